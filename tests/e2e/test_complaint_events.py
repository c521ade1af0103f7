"""A complaint in the running system: its events reach warning (a complaint warning) and
profile (the contact log), through outbox, relay and consumers, each its own process."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from test_keepwell_run import (
    READY_TIMEOUT,
    stop_and_check_nothing_left,
    system,  # noqa: F401  (the fixture)
    system_env,
    wait_for_health,
)

from services.kit.auth import Principal, Role, issue_token
from services.kit.config import Settings
from services.kit.db import libpq_url
from services.kit.testing import Infra, create_scratch_database, drop_database

pytestmark = pytest.mark.e2e


def poll(database: str, sql: str, *args: Any) -> Any:
    async def once() -> Any:
        conn = await asyncpg.connect(libpq_url(database))
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    deadline = time.monotonic() + READY_TIMEOUT
    found = asyncio.run(once())
    while not found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = asyncio.run(once())
    return found


def test_complaint_events_reach_warning_and_profile(
    infra: Infra,
    tmp_path: Path,
    system: object,  # noqa: F811
) -> None:
    database = asyncio.run(create_scratch_database(infra.database_url, "kw_e2e"))
    try:
        env = system_env(tmp_path, DATABASE_URL=database, REDIS_URL=infra.redis_url)
        process, gateway = system(env)  # type: ignore[operator]
        wait_for_health(gateway, process)
        # Profile's customer events fill the complaint service's customer copy.
        assert poll(database, "SELECT count(*) >= 40 FROM complaint.customer")
        msisdn = poll(
            database,
            "SELECT msisdn FROM complaint.customer WHERE msisdn NOT IN "
            "(SELECT msisdn FROM complaint.ticket) ORDER BY msisdn LIMIT 1",
        )
        token = issue_token(Principal(user_id="e2e-operator", role=Role.operator), Settings())
        url = f"http://127.0.0.1:{env['KEEPWELL_COMPLAINT_PORT']}"
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            created = client.post(
                "/complaints",
                json={
                    "msisdn": msisdn,
                    "channel": "hotline",
                    "category": "billing",
                    "description": "不明扣费：未订购的增值业务每月扣费",
                },
            )
            assert created.status_code == 201, created.text
            ticket = created.json()
            acked = client.post(
                f"/complaints/{ticket['id']}/acknowledge",
                json={"version": 1, "emotion": "客户很气愤，已致歉并承诺尽快核查"},
            )
            assert acked.status_code == 200, acked.text
        # complaint.opened -> warning raises its complaint warning for the subscriber.
        assert poll(
            database,
            "SELECT count(*) FROM warning.warning WHERE msisdn = $1 AND signal = 'complaint'",
            msisdn,
        )
        # complaint.step_recorded (acknowledged reaches the customer) -> profile's contact log.
        assert poll(
            database,
            "SELECT count(*) FROM profile.contact_log WHERE source = 'complaint' "
            "AND source_ref LIKE $1",
            f"{ticket['number']}:%",
        )
        # The demo complaints' events went the same way.
        assert poll(database, "SELECT count(*) >= 8 FROM complaint.ticket")
        stop_and_check_nothing_left(process, signal.SIGTERM)
    finally:
        asyncio.run(drop_database(database))
