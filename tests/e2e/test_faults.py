"""Faults lose nothing: the real processes, with PostgreSQL or Redis stopped and restarted,
or a worker, a relay or a service SIGKILLed, in the middle of a campaign dispatch, an event
relay burst and a detection run.

The module runs one system of its own (keepwell/bench/_system.py: its own embedded
PostgreSQL and Redis, so stopping them hurts nobody else; profile, warning, care and
complaint served, profile's, care's and warning's workers, the SMS sandbox), started once
(about 40 s on a busy 2-core machine) and left whole by every test.

Of the 12 combinations, 11 run, each a distinct way back:

- campaign x PostgreSQL stopped (dispatch jobs retried, the pool reconnects), Redis stopped
  (the worker waits for it; the re-driver replaces lost nudges), care's worker SIGKILLed
  (leases run out, sends of unknown outcome looked up at the provider before any resend),
  care's service SIGKILLed (the provider pushes its receipts again): every eligible
  recipient sent exactly one message, and the sandbox's record and care's rows agree.
- event burst (customers imported into profile, relayed to warning, care and complaint) x
  PostgreSQL stopped (the import answers 503 and the uploader retries with its
  Idempotency-Key; the relay's sweep goes on), Redis stopped (lost nudges: the sweep),
  profile's worker SIGKILLed (its claimed deliveries come back after the lease), a consumer
  SIGKILLed (deliveries retried with back-off): every event applied once by every consumer.
- detection x PostgreSQL stopped (the job is retried), Redis stopped (the job runs on
  without it), warning's worker SIGKILLed (the run's transaction rolls back with its
  connection; `keepwell detect` runs the day again): the same warnings as an undisturbed
  run, and never half of them.

Left out: a service SIGKILLed during detection, whose job runs in the worker with no
service on its path. "In the middle" is made certain, not timed: the sandbox holds the
provider calls after some messages, the fault comes between the halves of a burst, and the
test holds detection's advisory lock until the run waits on it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from keepwell.bench import _system
from keepwell.bench._system import System, until
from services.kit.db import create_engine, create_sessionmaker, libpq_url

# No date can break a fault and its recovery, and they are slow: the first pass of CI only.
pytestmark = [pytest.mark.e2e, pytest.mark.once]

CUSTOMERS = 400
DETECTION_DAY = date(2026, 11, 22)
SUBSCRIBERS = 300
RECOVERY = 120.0


@pytest.fixture(scope="module")
async def system() -> AsyncIterator[System]:
    # Not pytest's tmp_path: another pytest run on the machine resets the permissions of
    # its base directory, and the embedded PostgreSQL (its own system user) loses its data.
    directory = Path(tempfile.mkdtemp(prefix="keepwell-faults-"))
    started = await _system.start_system(
        directory,
        services=["profile", "warning", "care", "complaint"],
        workers=["profile", "care", "warning"],
    )
    try:
        await _system.load_care_customers(
            started.database_url, _system.numbers_from(14700000000, CUSTOMERS)
        )
        for part in (0, 1):
            await asyncio.to_thread(
                _load_population, started.database_url, part, DETECTION_DAY.isoformat()
            )
        yield started
    finally:
        await _system.stop_system(started)
        shutil.rmtree(directory, ignore_errors=True)


def _load_population(url: str, part: int, today: str) -> None:
    from keepwell.bench.detect import load_part

    load_part(url, SUBSCRIBERS, 60, 7, today, part)


async def fault_on(system: System, fault: str) -> None:
    if fault in ("postgres", "redis"):
        await system.stop_server(fault)
    else:
        await system.kill(fault)


async def recover(system: System, fault: str) -> None:
    await system.restart(fault)
    if fault not in ("postgres", "redis"):
        await system.wait_ready([fault])


# -- a campaign dispatch ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["postgres", "redis", "care-worker", "care"])
async def test_a_campaign_dispatch_hit_by_a_fault_sends_every_eligible_recipient_one_message(
    system: System, fault: str
) -> None:
    # From the 150th message on the provider takes each call and holds its answer: the
    # fault lands, for certain, with batches at the provider and their outcome unknown.
    await _system.reset_sandbox(system, hold_after=150)
    async with httpx.AsyncClient(base_url=system.sandbox_url, timeout=10) as sandbox:
        campaign = await _system.approve_campaign(system, f"网络维护通知（{fault}）")

        async def held() -> bool:
            return int((await sandbox.get("/stats")).json()["held"]) > 0

        await until(held, 60, "the dispatch to reach the held provider calls")
        await fault_on(system, fault)
        await sandbox.post("/control", json={"hold_after": None})
        if fault in ("postgres", "redis"):

            async def answered() -> bool:
                return int((await sandbox.get("/stats")).json()["held"]) == 0

            # The workers meet the outage with the provider's answers in hand.
            await until(answered, 30, "the held provider calls to be answered")
        await recover(system, fault)

    async def all_delivered() -> bool:
        outcome = await _system.campaign_outcome(system, campaign)
        delivered = int(outcome["states"].get("delivered", 0))
        return outcome["status"] == "completed" and delivered == len(outcome["eligible"])

    await until(all_delivered, RECOVERY, f"the campaign to be delivered after {fault}", every=1)
    outcome = await _system.campaign_outcome(system, campaign)
    assert outcome["duplicates"] == 0
    assert Counter(outcome["sent"]) == Counter(outcome["eligible"])
    assert outcome["states"] == {"delivered": len(outcome["eligible"])}
    assert len(outcome["eligible"]) >= CUSTOMERS


# -- an event relay burst ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "first"), [("postgres", 0), ("redis", 1), ("profile-worker", 2), ("warning", 3)]
)
async def test_an_event_burst_hit_by_a_fault_is_applied_once_by_every_consumer(
    system: System, fault: str, first: int
) -> None:
    numbers = _system.numbers_from(14810000000 + first * 100_000, 600)
    batches = [numbers[i : i + 100] for i in range(0, len(numbers), 100)]
    for n, batch in enumerate(batches[:3]):
        await _system.import_customers(system, batch, f"faults-{fault}-{n}")
    await fault_on(system, fault)
    rest = asyncio.gather(
        *(
            _system.import_customers(system, batch, f"faults-{fault}-{n}")
            for n, batch in enumerate(batches[3:], start=3)
        )
    )
    if fault == "postgres":
        # The uploader's imports are refused meanwhile (503) and retried with their keys.
        await until(lambda: _refused(system), 30, "profile to answer database_unavailable")
    elif fault == "redis":
        await rest  # profile takes imports without Redis; only their nudges are lost
    await recover(system, fault)
    await rest

    async def applied() -> bool:
        outcome = await _system.event_outcome(system, numbers)
        return all(
            outcome[c]["never_applied"] == 0 and outcome[c]["missing_customers"] == 0
            for c in _system.CONSUMERS
        )

    await until(applied, RECOVERY, f"every consumer to apply the burst after {fault}", every=1)
    outcome = await _system.event_outcome(system, numbers)
    assert outcome["events"] == len(numbers)  # one customer_created each, no import twice
    for consumer in _system.CONSUMERS:
        assert outcome[consumer] == {
            "applied": len(numbers),
            "applied_twice": 0,
            "never_applied": 0,
            "missing_customers": 0,
        }, consumer
    assert outcome["dead"] == 0


async def _refused(system: System) -> bool:
    async with httpx.AsyncClient(base_url=system.url("profile"), timeout=5) as client:
        answer = await client.get(
            "/customers", headers={"Authorization": f"Bearer {_system.token(system)}"}
        )
    return answer.status_code == 503 and answer.json()["code"] == "database_unavailable"


# -- a detection run --------------------------------------------------------------------------

WARNINGS = (
    "SELECT msisdn, signal, status, severity, risk_score, evidence::text FROM warning.warning"
    " ORDER BY msisdn, signal"
)
DETECT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('warning.detect'))"


async def _warnings(system: System) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(libpq_url(system.database_url))
    try:
        return [tuple(r) for r in await conn.fetch(WARNINGS)]
    finally:
        await conn.close()


async def _undisturbed(system: System, day: date) -> list[tuple[Any, ...]]:
    """The warnings a run of ``day`` leaves, from a run rolled back after looking."""
    from sqlalchemy import text

    from services.warning import service

    engine = create_engine(system.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            await service.run_detection(session, day)
            found = [tuple(r) for r in await session.execute(text(WARNINGS))]
            await session.rollback()
    finally:
        await engine.dispose()
    return found


async def _detection_waits(system: System) -> bool:
    conn = await asyncpg.connect(libpq_url(system.database_url))
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        )
    finally:
        await conn.close()


async def _detection_gone(system: System) -> bool:
    conn = await asyncpg.connect(libpq_url(system.database_url))
    try:
        return not await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(("fault", "back"), [("postgres", 0), ("redis", 1), ("warning-worker", 2)])
async def test_a_detection_run_hit_by_a_fault_leaves_the_warnings_of_an_undisturbed_run(
    system: System, fault: str, back: int
) -> None:
    day = DETECTION_DAY - timedelta(days=back)
    before = await _warnings(system)
    expected = await _undisturbed(system, day)
    assert expected != before  # the run has work to do

    holder = await asyncpg.connect(libpq_url(system.database_url))
    try:
        await _interrupt_detection(system, fault, day, holder, before, expected)
    finally:
        holder.terminate()  # (a PostgreSQL restart took its connection already)
    assert await _warnings(system) == expected


async def _interrupt_detection(
    system: System,
    fault: str,
    day: date,
    holder: asyncpg.Connection,
    before: list[tuple[Any, ...]],
    expected: list[tuple[Any, ...]],
) -> None:
    held = holder.transaction()
    await held.start()
    await holder.execute(DETECT_LOCK)
    async with httpx.AsyncClient(base_url=system.url("warning"), timeout=10) as client:
        queued = await client.post(
            "/detection/runs",
            params={"day": day.isoformat()},
            headers={"Authorization": f"Bearer {_system.token(system)}"},
        )
    assert queued.status_code == 202 and queued.json()["queued"], queued.text
    await until(lambda: _detection_waits(system), 60, "the detection job to start its run")

    async def whole() -> bool:
        return await _warnings(system) == expected

    await fault_on(system, fault)
    if fault == "postgres":
        await system.restart("postgres")  # the holder's connection went with the server
        await until(whole, RECOVERY, "the retried detection to finish", every=1)
    elif fault == "redis":
        await held.rollback()
        await until(whole, RECOVERY, "detection to finish without Redis", every=1)
        await system.restart("redis")
    else:
        await held.rollback()
        await until(lambda: _detection_gone(system), 30, "the killed run's backend to end")
        assert await _warnings(system) == before  # nothing half-done
        await recover(system, fault)
        await asyncio.to_thread(_detect_command, system, day)


def _detect_command(system: System, day: date) -> None:
    """``keepwell detect --date DAY``, as the operator runs it beside the system."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "keepwell", "detect", "--date", day.isoformat()],
        env={**os.environ, **system.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
