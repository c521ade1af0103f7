"""`keepwell run` as a user runs it: separate processes, real ports, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from services.kit.config import SERVICES
from services.kit.db import libpq_url
from services.kit.embedded import free_port
from services.kit.testing import Infra, create_scratch_database, drop_database

pytestmark = pytest.mark.e2e

READY_TIMEOUT = 90.0
HEALTH = {"query": "{ health { service ready failing } }"}


def system_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    sandbox = free_port()
    env.update(
        CARE_SANDBOX_PORT=str(sandbox),
        CARE_SANDBOX_URL=f"http://127.0.0.1:{sandbox}",
        KEEPWELL_ENV="development",
        KEEPWELL_DATA_DIR=str(tmp_path / "data"),
        KEEPWELL_DEMO_CUSTOMERS="40",
        KEEPWELL_WORKER_METRICS_BASE_PORT=str(free_port()),
        **{f"KEEPWELL_{p.upper()}_PORT": str(free_port()) for p in ("gateway", *SERVICES)},
    )
    env.update(extra)  # the caller's settings win over these defaults
    return env


def wait_for_health(gateway: str, process: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    deadline = time.monotonic() + READY_TIMEOUT
    last: object = None
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"keepwell run exited with {process.returncode}"
            try:
                body = client.post(f"{gateway}/graphql", json=HEALTH).json()
                health = body["data"]["health"]
                if all(h["ready"] for h in health):
                    return list(health)
                last = health
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
                last = exc
            time.sleep(0.25)
    raise AssertionError(f"system not ready after {READY_TIMEOUT}s: {last}")


def wait_for_read_models(database: str, expected: int) -> dict[str, int]:
    async def counts() -> dict[str, int]:
        conn = await asyncpg.connect(libpq_url(database))
        try:
            return {
                s: await conn.fetchval(f"SELECT count(*) FROM {s}.customer")
                for s in ("warning", "care")
            }
        finally:
            await conn.close()

    deadline = time.monotonic() + READY_TIMEOUT
    found = asyncio.run(counts())
    while any(n < expected for n in found.values()) and time.monotonic() < deadline:
        time.sleep(0.25)
        found = asyncio.run(counts())
    return found


def stop_and_check_nothing_left(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    tree = psutil.Process(process.pid).children(recursive=True)
    assert len(tree) >= len(SERVICES) + 1  # every service and the gateway at least
    process.send_signal(sig)
    assert process.wait(30) == 0
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert [p.pid for p in alive] == [], "processes left behind after stop"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Starts `keepwell run` with the environment the caller prepared in ``tmp_path``."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "keepwell", "run"], env=env, stdin=subprocess.DEVNULL
        )
        started.append(process)
        return process, f"http://127.0.0.1:{env['KEEPWELL_GATEWAY_PORT']}"

    yield start  # type: ignore[misc]
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_on_configured_servers_serves_health_and_stops_on_sigterm(
    infra: Infra, tmp_path: Path, system: object
) -> None:
    database = asyncio.run(create_scratch_database(infra.database_url, "kw_e2e"))
    try:
        env = system_env(tmp_path, DATABASE_URL=database, REDIS_URL=infra.redis_url)
        process, gateway = system(env)  # type: ignore[operator]
        health = wait_for_health(gateway, process)
        assert sorted(str(h["service"]) for h in health) == sorted(SERVICES)
        # The demo customers reach warning's and care's read models through profile's
        # events: outbox, the workers' relay, each consumer's POST /events.
        assert wait_for_read_models(database, expected=40) == {"warning": 40, "care": 40}
        stop_and_check_nothing_left(process, signal.SIGTERM)
    finally:
        asyncio.run(drop_database(database))


def test_run_with_nothing_configured_starts_embedded_servers_and_stops_on_sigint(
    tmp_path: Path, system: object
) -> None:
    env = system_env(tmp_path)
    process, gateway = system(env)  # type: ignore[operator]
    wait_for_health(gateway, process)
    servers = [
        p
        for p in psutil.Process(process.pid).children(recursive=True)
        if p.name() in ("redis-server",)
    ]
    assert servers, "embedded redis not started"
    postgres = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert postgres, "embedded postgres not started"
    stop_and_check_nothing_left(process, signal.SIGINT)
    _, alive = psutil.wait_procs(postgres, timeout=10)
    assert alive == [], "embedded postgres left running"
