"""A new user's first hour: `make run` on a fresh checkout shows every main job at work,
and `keepwell` commands in another terminal reach the same system with nothing set."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from test_keepwell_run import (
    stop_and_check_nothing_left,
    system,  # noqa: F401  (the fixture)
    system_env,
    wait_for_health,
)

from services.kit import runfile
from services.kit.db import libpq_url

pytestmark = pytest.mark.e2e

DEMO_WITHIN = 60.0  # seconds after ready


async def demo_state(database: str) -> dict[str, Any]:
    conn = await asyncpg.connect(libpq_url(database))
    try:
        return dict(
            await conn.fetchrow(
                "SELECT "
                "(SELECT count(DISTINCT signal) FROM warning.warning) AS signals, "
                "(SELECT count(*) FROM warning.warning WHERE outcome IS NOT NULL) AS resolved, "
                "(SELECT count(*) FROM care.task) AS tasks, "
                "(SELECT count(*) FROM care.campaign WHERE status = 'draft') AS drafts, "
                "(SELECT count(*) FROM care.campaign WHERE kind <> 'auto' "
                " AND status = 'completed') AS completed, "
                "(SELECT count(*) FROM care.recipient r JOIN care.campaign c "
                " ON c.id = r.campaign_id WHERE c.kind = 'alert' AND r.state = 'delivered') "
                " AS delivered, "
                "(SELECT count(*) FROM complaint.ticket WHERE state <> 'closed') AS open_tickets"
            )
        )
    finally:
        await conn.close()


def wait_for_demo(database: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEMO_WITHIN
    while True:
        state = asyncio.run(demo_state(database))
        done = (
            state["signals"] >= 5
            and state["resolved"] > 0
            and state["tasks"] > 0
            and state["drafts"] >= 1
            and state["completed"] >= 1
            and state["delivered"] > 0
        )
        if done or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_make_run_shows_every_main_job_and_commands_beside_it_reach_the_same_database(
    tmp_path: Path,
    system: Any,  # noqa: F811
) -> None:
    data_dir = tmp_path / ".keepwell"
    # As `make run` does: nothing configured, so embedded servers; the default demo size.
    env = system_env(tmp_path, KEEPWELL_DATA_DIR=str(data_dir), KEEPWELL_DEMO_CUSTOMERS="500")
    process, gateway = system(env)
    wait_for_health(gateway, process)

    info = runfile.live_run(data_dir)
    assert info is not None and info.pid == process.pid
    database = info.env["DATABASE_URL"]
    state = wait_for_demo(database)
    assert state["signals"] >= 5, state
    assert state["resolved"] > 0, state  # followed up, so retention reports are not empty
    assert state["tasks"] > 0, state
    assert state["drafts"] >= 1 and state["completed"] >= 1, state
    assert state["delivered"] > 0, state  # through the SMS sandbox, with receipts
    assert state["open_tickets"] > 0, state

    # Another terminal in the same directory: no URLs, no data dir set.
    bare = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith(("KEEPWELL_", "CARE_"))
    }
    detect = subprocess.run(
        [sys.executable, "-m", "keepwell", "detect"],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert detect.returncode == 0, detect.stderr
    assert "day" in json.loads(detect.stdout)
    exported = subprocess.run(
        [sys.executable, "-m", "keepwell", "env"],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"export DATABASE_URL='{database}'" in exported.splitlines()

    # The README's first queries, through the gateway, as a manager of the demo.
    manager = asyncio.run(busiest_manager(database))
    token = subprocess.run(
        [sys.executable, "-m", "keepwell", "token", "--gateway", "--role", "manager",
         "--user", manager["manager_id"], "--team", manager["team_id"]],
        cwd=tmp_path, env=bare, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    work_queue, customer_360 = re.findall(r"```graphql\n(.*?)```", readme, re.S)[:2]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        queue = client.post(f"{gateway}/graphql", json={"query": work_queue}).json()
        assert "errors" not in queue, queue
        warnings = queue["data"]["myWorkQueue"]["warnings"]
        assert warnings and warnings[0]["customer"]["name"]
        picture = client.post(
            f"{gateway}/graphql",
            json={"query": customer_360, "variables": {"msisdn": warnings[0]["msisdn"]}},
        ).json()
        assert "errors" not in picture, picture
        assert picture["data"]["customer"]["riskScore"]["score"] > 0

    stop_and_check_nothing_left(process, signal.SIGINT)
    assert not runfile.run_file(data_dir).exists()


async def busiest_manager(database: str) -> dict[str, Any]:
    conn = await asyncpg.connect(libpq_url(database))
    try:
        row = await conn.fetchrow(
            "SELECT manager_id, team_id FROM warning.warning WHERE status <> 'resolved' "
            "AND manager_id IS NOT NULL GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        )
    finally:
        await conn.close()
    assert row is not None, "the demo has open warnings"
    return dict(row)
