"""The body of ``keepwell bench events`` (kept apart so the CLI starts fast).

After the events are applied, about the oldest ``prune_share`` of them are pruned as if
the retention ended there (the same batched deletes the workers run, with the cut-off at
the time the event at that position by sequence was delivered; with several relays a few
earlier events were delivered after it and stay), and the event tables' rows and sizes
are reported before the prune, right after it and after a plain VACUUM (what autovacuum
does next). A DELETE frees space inside the table files for the next rows, it does not
shrink the files: the sizes stay, and the next events fill the freed pages instead of
growing the tables."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from keepwell.bench._report import Figure, Result
from keepwell.bench._scratch import Scratch
from services.kit.config import Settings
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.embedded import free_port
from services.kit.events.prune import prune_inbox, prune_outbox
from services.kit.events.publish import publish
from services.kit.events.relay import Relay, RelayPolicy
from services.kit.testing import ProbeConsumer, ProbePinged


def _serve_probe(database_url: str, port: int) -> None:
    """The consumer, in a process of its own, as a subscribing service would be."""
    import uvicorn

    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("KEEPWELL_LOG_LEVEL", "WARNING")  # no access line per delivery
    settings = Settings()
    uvicorn.run(ProbeConsumer().app(settings), host="127.0.0.1", port=port, log_level="warning")


async def _wait_until_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(600):
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"probe consumer at {url} did not start")


EVENT_TABLES = ("profile.outbox", "profile.delivery", "profile.delivery_attempt", "probe.inbox")


async def _sizes(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    """Rows and total size on disk (table, indexes, TOAST) of each event table."""
    sizes: dict[str, dict[str, int]] = {}
    async with engine.connect() as conn:
        for table in EVENT_TABLES:
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*) AS rows, pg_total_relation_size('{table}') AS bytes"
                        f" FROM {table}"
                    )
                )
            ).one()
            sizes[table] = {"rows": row.rows, "bytes": row.bytes}
    return sizes


async def _prune(engine: AsyncEngine, total: int, share: float) -> dict[str, Any]:
    """Prune the oldest ``share`` of the events as if the retention ended at the first
    event after them: the cut-offs are the time that event was delivered (outbox: events
    that occurred and were delivered before it) and the time its inbox row was written
    (inbox)."""
    sessionmaker = create_sessionmaker(engine)
    before = await _sizes(engine)
    async with engine.connect() as conn:
        boundary = (
            await conn.execute(
                text(
                    "SELECT d.delivered_at, i.processed_at FROM profile.outbox o"
                    " JOIN profile.delivery d ON d.event_seq = o.seq"
                    " JOIN probe.inbox i ON i.event_id = o.id"
                    " ORDER BY o.seq OFFSET :n LIMIT 1"
                ),
                {"n": min(total - 1, int(total * share))},
            )
        ).one()
    sent = await prune_outbox(sessionmaker, "profile", before=boundary.delivered_at)
    received = await prune_inbox(sessionmaker, "probe", before=boundary.processed_at)
    after = await _sizes(engine)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in EVENT_TABLES:
            await conn.execute(text(f"VACUUM {table}"))
    vacuumed = await _sizes(engine)
    return {
        "share": share,
        "events": sent.events,
        "deliveries": sent.deliveries,
        "attempts": sent.attempts,
        "inbox": received.inbox,
        "seconds": round(sent.seconds + received.seconds, 2),
        "rows_per_second": round(
            (sent.events + sent.deliveries + sent.attempts + received.inbox)
            / max(sent.seconds + received.seconds, 1e-9)
        ),
        "batches": sent.batches + received.batches,
        "longest_batch_seconds": max(sent.longest_batch_seconds, received.longest_batch_seconds),
        "tables": {
            table: {
                "before": before[table],
                "after": after[table],
                "after_vacuum": vacuumed[table],
            }
            for table in EVENT_TABLES
        },
    }


async def run(
    found: Scratch,
    *,
    events: int,
    aggregates: int,
    relays: int,
    batch: int,
    prune_share: float = 0.5,
) -> Result:
    total = events
    assert found.database_url is not None
    database_url = found.database_url
    # The relay's development key, here and in the consumer's process: the bench's own,
    # not the one of a system run from this directory.
    os.environ["KEEPWELL_DATA_DIR"] = str(found.dir / "data")
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(migrations.upgrade, database_url)
        engine = create_engine(database_url, pool_size=relays + 2)
        stack.push_async_callback(engine.dispose)
        probe = ProbeConsumer()
        await probe.create_tables(engine)

        port = free_port()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve_probe, args=(database_url, port), daemon=True
        )
        process.start()
        stack.callback(process.join, 10)
        stack.callback(process.terminate)
        probe_url = f"http://127.0.0.1:{port}"
        await _wait_until_up(probe_url)

        settings = Settings(database_url=database_url)
        sessionmaker = create_sessionmaker(engine)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        producing = True

        async def produce() -> None:
            nonlocal producing
            for start in range(0, total, batch):
                async with session_scope(sessionmaker) as session:
                    for n in range(start, min(start + batch, total)):
                        await publish(
                            session, ProbePinged(n=n), aggregate_id=f"agg-{n % aggregates}"
                        )
            producing = False

        async def relay_loop() -> None:
            relay = Relay(
                "profile",
                sessionmaker,
                http,
                settings,
                RelayPolicy(batch_size=500),
                service_url=lambda _: probe_url,
            )
            while True:
                was_producing = producing
                if await relay.run() == 0 and not was_producing:
                    return
                if was_producing:
                    await asyncio.sleep(0.01)  # let the producer get ahead

        produced_seconds = 0.0

        async def timed_produce() -> None:
            nonlocal produced_seconds
            await produce()
            produced_seconds = time.perf_counter() - started

        started = time.perf_counter()
        await asyncio.gather(timed_produce(), *(relay_loop() for _ in range(relays)))
        seconds = time.perf_counter() - started

        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS applied, count(DISTINCT e.event_id) AS distinct_events,"
                        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
                        "   e.applied_at - o.occurred_at)) AS p50,"
                        " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM"
                        "   e.applied_at - o.occurred_at)) AS p99"
                        " FROM probe.effect e JOIN profile.outbox o ON o.id = e.event_id"
                    )
                )
            ).one()
        pruned = await _prune(engine, total, prune_share)
        await probe.drop_tables(engine)
    end_to_end = round(total / seconds, 1)
    produced = round(total / produced_seconds, 1)
    return Result(
        # How many events a second reach their consumer's effect, next to how many a second
        # the producers wrote: a ratio near 1 means the relays keep up with the writes.
        headline=Figure("events_per_second", end_to_end, "events/s, publish to effect"),
        comparison=Figure("produced_per_second", produced, "events/s written to the outbox"),
        duplicates=row.applied - row.distinct_events,
        lost=total - row.distinct_events,
        details={
            "events": total,
            "aggregates": aggregates,
            "relays": relays,
            "seconds": round(seconds, 2),
            "events_per_second": end_to_end,
            "produce_seconds": round(produced_seconds, 2),
            "produced_per_second": produced,
            "applied": row.applied,
            "applied_twice": row.applied - row.distinct_events,
            "lag_p50_seconds": round(float(row.p50), 3),
            "lag_p99_seconds": round(float(row.p99), 3),
            "prune": pruned,
        },
    )
