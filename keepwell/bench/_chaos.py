"""The body of ``keepwell bench chaos`` (kept apart so the CLI starts fast).

A system of its own (``_system.py``: embedded PostgreSQL and Redis, the four services,
profile's and care's workers, the SMS sandbox) dispatches one campaign to N recipients
while an uploader imports customers into profile, whose events the relay carries to
warning, care and complaint. Every ``interval`` seconds a kind is drawn (seeded) from
worker, service, relay and Redis; that process is SIGKILLed and started again at once.
Recovery is measured from the kill: until the restarted part answers again (``ready``),
and until the work it carries moves again (``progress``: messages at the sandbox for the
worker, events applied for the relay, care's receipts or events for care's service, either
for Redis; the ready time once that work is done). Afterwards: messages the sandbox got
twice and events a consumer applied twice (``duplicates``), eligible recipients never sent
to and events or customers a consumer never got (``lost``)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import asyncpg
import httpx

from keepwell.bench import _system
from keepwell.bench._report import Figure, Result
from keepwell.bench._scratch import Scratch
from keepwell.bench._system import KILLABLE, System, until
from services.kit.db import libpq_url

KINDS = ("worker", "service", "relay", "redis")
IMPORT_BATCH = 500
STALL_SECONDS = 300.0
RECIPIENTS_FROM = 14700000000
CUSTOMERS_FROM = 14800000000


async def run(
    found: Scratch, *, recipients: int, events: int, interval: float, seed: int
) -> Result:
    started = time.monotonic()
    assert found.database_url is not None
    system = await _system.start_system(
        found.dir,
        database_url=found.database_url,
        services=["profile", "warning", "care", "complaint"],
        workers=["profile", "care"],
        extra_env={
            "CARE_BATCH_SIZE": "500",
            "CARE_LEASE_SECONDS": "10",
            # A relay's POST of 500 events may take seconds under this load: with the tests'
            # 10 s lease (a 2.5 s POST timeout) the relay gave up on batches care was still
            # applying and sent them again, until care's pool was exhausted.
            "KEEPWELL_RELAY_LEASE_SECONDS": "40",
        },
    )
    try:
        setup = time.monotonic() - started
        audience = _system.numbers_from(RECIPIENTS_FROM, recipients)
        await _system.load_care_customers(system.database_url, audience)
        customers = _system.numbers_from(CUSTOMERS_FROM, events)
        chaos = Chaos(system, random.Random(seed), interval, customers)
        began = time.monotonic()
        campaign = await _system.approve_campaign(system, "网络维护通知（压测）")
        stream = asyncio.create_task(_stream(system, customers))
        await chaos.run(campaign, stream)
        seconds = time.monotonic() - began
        await stream
        sent = await _system.campaign_outcome(system, campaign)
        applied = await _system.event_outcome(system, customers)
    finally:
        await _system.stop_system(system)
    consumers = [applied[c] for c in _system.CONSUMERS]
    duplicates = sent["duplicates"] + sum(c["applied_twice"] for c in consumers)
    lost = sent["lost"] + sum(c["never_applied"] + c["missing_customers"] for c in consumers)
    worst = max((k["progress_seconds"] for k in chaos.kills), default=None)
    return Result(
        headline=Figure("worst_recovery_seconds", worst, "s from a kill to progress again"),
        comparison=Figure("interval_seconds", interval, "s between kills"),
        duplicates=duplicates,
        lost=lost,
        details={
            "recipients": recipients,
            "events": events,
            "seed": seed,
            "setup_seconds": round(setup, 1),
            "seconds": round(seconds, 1),
            "messages_per_second": round(len(set(sent["sent"])) / seconds, 1),
            "events_per_second": round(min(c["applied"] for c in consumers) / seconds, 1),
            "campaign": {
                "eligible": len(sent["eligible"]),
                "sent": len(sent["sent"]),
                "duplicates": sent["duplicates"],
                "lost": sent["lost"],
                "recipient_states": sent["states"],
            },
            "consumers": dict(zip(_system.CONSUMERS, consumers, strict=True)),
            "dead_deliveries": applied["dead"],
            "recovery_by_kind": _by_kind(chaos.kills),
            "kills": chaos.kills,
        },
    )


async def _stream(system: System, customers: list[str]) -> None:
    """The uploader: batch after batch, each retried with its own key until taken."""
    for n, start in enumerate(range(0, len(customers), IMPORT_BATCH)):
        batch = customers[start : start + IMPORT_BATCH]
        await _system.import_customers(system, batch, f"chaos-{n}", within=600)


class Chaos:
    def __init__(
        self, system: System, draw: random.Random, interval: float, customers: list[str]
    ) -> None:
        self.system = system
        self.draw = draw
        self.interval = interval
        self.customers = customers
        self.kills: list[dict[str, Any]] = []

    async def run(self, campaign: str, stream: asyncio.Task[None]) -> None:
        """Kill until everything is sent and applied, or nothing moved for
        ``STALL_SECONDS`` (a dead delivery is never applied by itself): what is missing
        then is counted as lost."""
        began = time.monotonic()
        next_kill = began + self.interval
        moved_at = looked_at = began
        last: dict[str, Any] | None = None
        while not await self._finished(campaign, stream):
            if time.monotonic() - looked_at > 10:  # counting is work for the database too
                looked_at, now = time.monotonic(), await self._progress(campaign)
                if now != last:
                    moved_at, last = looked_at, now
                elif looked_at - moved_at > STALL_SECONDS:
                    return
            if stream.done() and stream.exception() is not None:
                raise RuntimeError(f"the event stream failed: {stream.exception()}")
            if time.monotonic() >= next_kill:
                at = round(time.monotonic() - began, 1)
                kill = await self._kill(self.draw.choice(KINDS), campaign)
                self.kills.append({"at_seconds": at, **kill})
                next_kill = time.monotonic() + self.interval
            await asyncio.sleep(0.5)

    async def _finished(self, campaign: str, stream: asyncio.Task[None]) -> bool:
        if not stream.done():
            return False
        progress = await self._progress(campaign)
        if not progress["campaign_done"] or progress["delivered"] < progress["eligible"]:
            return False
        applied = await _system.event_outcome(self.system, self.customers)
        return all(
            applied[c]["never_applied"] == 0 and applied[c]["missing_customers"] == 0
            for c in _system.CONSUMERS
        )

    async def _kill(self, kind: str, campaign: str) -> dict[str, Any]:
        name = "redis" if kind == "redis" else KILLABLE[kind]
        before = await self._progress(campaign)
        killed = time.monotonic()
        await self.system.kill(name)
        await self.system.restart(name)
        await self._until_ready(name)
        ready = time.monotonic() - killed
        await until(
            lambda: self._moved(kind, campaign, before), 600, f"progress after killing {name}"
        )
        return {
            "kind": kind,
            "process": name,
            "ready_seconds": round(ready, 2),
            "progress_seconds": round(time.monotonic() - killed, 2),
        }

    async def _until_ready(self, name: str) -> None:
        # Redis answers once its restart returns (it waits for PING); a process once its
        # readiness (or a worker's metrics) answers.
        if name != "redis":
            await self.system.wait_ready([name], within=300)

    async def _moved(self, kind: str, campaign: str, before: dict[str, Any]) -> bool:
        now = await self._progress(campaign)
        sending = not before["campaign_done"]
        relaying = before["applied"] < len(self.customers) * len(_system.CONSUMERS)
        messages = now["messages"] > before["messages"]
        events = now["applied"] > before["applied"]
        receipts = now["delivered"] > before["delivered"]
        if kind == "worker":
            return messages or not sending
        if kind == "relay":
            return events or not relaying
        if kind == "service":
            pending = before["delivered"] < before["eligible"] or relaying
            return now["care_applied"] > before["care_applied"] or receipts or not pending
        return messages or events or not (sending or relaying)

    async def _progress(self, campaign: str) -> dict[str, Any]:
        conn = await asyncpg.connect(libpq_url(self.system.database_url))
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT status FROM care.campaign WHERE id = $1) AS status,"
                " (SELECT count(*) FROM care.recipient WHERE campaign_id = $1"
                "   AND state NOT IN ('suppressed', 'control')) AS eligible,"
                " (SELECT count(*) FROM care.recipient WHERE campaign_id = $1"
                "   AND state = 'delivered') AS delivered,"
                " (SELECT count(*) FROM warning.inbox) + (SELECT count(*) FROM care.inbox)"
                "   + (SELECT count(*) FROM complaint.inbox) AS applied,"
                " (SELECT count(*) FROM care.inbox) AS care_applied",
                campaign,
            )
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=self.system.sandbox_url, timeout=10) as client:
            stats = (await client.get("/stats")).json()
        assert row is not None
        return {
            "campaign_done": row["status"] == "completed",
            "eligible": int(row["eligible"]),
            "delivered": int(row["delivered"]),
            "applied": int(row["applied"]),
            "care_applied": int(row["care_applied"]),
            "messages": int(stats["unique"]),
        }


def _by_kind(kills: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        times = [k["progress_seconds"] for k in kills if k["kind"] == kind]
        ready = [k["ready_seconds"] for k in kills if k["kind"] == kind]
        summary[kind] = {
            "kills": len(times),
            "progress_seconds_median": round(statistics.median(times), 2) if times else None,
            "progress_seconds_max": max(times, default=None),
            "ready_seconds_max": max(ready, default=None),
        }
    return summary
