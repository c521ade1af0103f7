"""A real arq worker killed with SIGKILL in the middle of a campaign, then a new worker:
every eligible recipient gets exactly one message (checked at the sandbox, over HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from care_support import SeedCustomers, numbers, sent_phones, snapshot, wait_for
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.embedded import free_port
from services.kit.testing import Infra

pytestmark = pytest.mark.e2e


@pytest.fixture
def start_worker(
    infra: Infra, sandbox: httpx.AsyncClient, tmp_path: Path
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": infra.database_url,
            "REDIS_URL": infra.redis_url,
            "KEEPWELL_ENV": "test",
            "KEEPWELL_WORKER_METRICS_BASE_PORT": str(free_port() - 3),
            "CARE_SANDBOX_URL": str(sandbox.base_url),
            "CARE_BATCH_SIZE": "10",
            "CARE_LEASE_SECONDS": "3",
            "CARE_REDRIVE_EVERY_SECONDS": "1",
            "CARE_STALL_SECONDS": "2",
            "CARE_DISPATCH_CONCURRENCY": "4",
            # Daytime everywhere for this test: quiet hours have tests of their own.
            "CARE_QUIET_START_HOUR": "0",
            "CARE_QUIET_END_HOUR": "0",
        }
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "keepwell", "worker", "care"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_sigkilled_worker_mid_campaign_then_a_new_one_sends_each_message_once(
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    start_worker,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phones = numbers(1000)
    await seed_customers(*(snapshot(p) for p in phones))
    await seed_customers(snapshot("13900000001", sms_opt_out=True))
    # From the 200th message on the sandbox takes each batch but never answers: the kill
    # then lands, for certain, while batches are at the provider with their outcome unknown.
    await sandbox.post("/control", json={"delay_ms": 100, "hold_after": 200})
    campaign_id = await start_campaign()

    first = start_worker("first")

    async def held() -> bool:
        return int((await sandbox.get("/stats")).json()["held"]) > 0

    await wait_for(held, 60, "the first worker to send 200 messages and wait on the next")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (await sandbox.get("/stats")).json()["accepted"] < len(phones)
    async with engine.connect() as conn:
        in_flight = (
            await conn.execute(text("SELECT count(*) FROM care.recipient WHERE state = 'sending'"))
        ).scalar_one()
    assert in_flight > 0
    await sandbox.post("/control", json={"hold_after": None})

    start_worker("second")

    async def finished() -> bool:
        async with engine.connect() as conn:
            status = (
                await conn.execute(
                    text("SELECT status FROM care.campaign WHERE id = :c"), {"c": campaign_id}
                )
            ).scalar_one()
        return status == "completed"

    await wait_for(finished, 90, "the second worker to complete the campaign")

    stats = (await sandbox.get("/stats")).json()
    assert stats["duplicates"] == 0
    assert Counter(await sent_phones(sandbox)) == Counter(phones)
    async with engine.connect() as conn:
        final = dict(
            (
                await conn.execute(
                    text(
                        "SELECT state, count(*) FROM care.recipient WHERE campaign_id = :c "
                        "GROUP BY state"
                    ),
                    {"c": campaign_id},
                )
            ).all()
        )
    assert final == {"sent": len(phones), "suppressed": 1}
