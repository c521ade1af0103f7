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
from keepwell.bench._scratch import BenchFailed, Scratch
from services.kit.config import Settings
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.embedded import free_port
from services.kit.events.contracts import subscribe
from services.kit.events.prune import prune_inbox, prune_outbox
from services.kit.events.publish import publish_many
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


def _produce_share(
    database_url: str, index: int, producers: int, total: int, batch: int, aggregates: int
) -> None:
    """One producer process: its share of the events (every ``producers``-th, so each
    aggregate has one producer and its events' order is the order written), in
    transactions of ``batch`` events written with ``publish_many``, as a bulk job does."""
    os.environ["DATABASE_URL"] = database_url
    subscribe("probe", frozenset({ProbePinged.event_type}))

    async def produce() -> None:
        engine = create_engine(database_url, pool_size=1)
        sessionmaker = create_sessionmaker(engine)
        mine = range(index, total, producers)
        try:
            for start in range(0, len(mine), batch):
                async with session_scope(sessionmaker) as session:
                    await publish_many(
                        session,
                        [
                            (ProbePinged(n=n), f"agg-{n % aggregates}")
                            for n in mine[start : start + batch]
                        ],
                    )
        finally:
            await engine.dispose()

    asyncio.run(produce())


def _relay(database_url: str, probe_url: str, produced: Any) -> None:
    """One relay process: delivers until the producers are done and nothing is due."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("KEEPWELL_LOG_LEVEL", "WARNING")

    async def deliver() -> None:
        settings = Settings(database_url=database_url)
        engine = create_engine(database_url, pool_size=2)
        async with httpx.AsyncClient(timeout=30) as http:
            relay = Relay(
                "profile",
                create_sessionmaker(engine),
                http,
                settings,
                RelayPolicy(batch_size=500),
                service_url=lambda _: probe_url,
            )
            try:
                while True:
                    done = produced.is_set()
                    if await relay.run() == 0:
                        if done:
                            return
                        await asyncio.sleep(0.01)  # let the producers get ahead
            finally:
                await engine.dispose()

    asyncio.run(deliver())


def _spawn(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _join(processes: list[multiprocessing.process.BaseProcess], what: str) -> None:
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise BenchFailed(f"a {what} process failed (exit code {process.exitcode})")


async def _fill(engine: AsyncEngine, deliveries: int, aggregates: int, first: int) -> None:
    """A pre-filled outbox: ``deliveries`` events to the probe, each with its delivery, as
    producers would have left them while the relays were down (written in SQL: the drain,
    not the writing, is measured)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO profile.outbox"
                " (id, type, version, aggregate_id, occurred_at, payload)"
                " SELECT gen_random_uuid(), :type, 1,"
                " 'drain-' || (g % CAST(:aggregates AS bigint)),"
                " clock_timestamp(), jsonb_build_object('n', g)"
                " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
                " ORDER BY g"
            ),
            {
                "type": ProbePinged.event_type,
                "aggregates": aggregates,
                "first": first,
                "last": first + deliveries - 1,
            },
        )
        await conn.execute(
            text(
                "INSERT INTO profile.delivery (event_seq, subscriber, aggregate_id)"
                " SELECT seq, 'service:probe', aggregate_id FROM profile.outbox"
                " WHERE aggregate_id LIKE 'drain-%' ORDER BY seq"
            )
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE profile.outbox, profile.delivery"))


async def _applied(engine: AsyncEngine, prefix: str) -> Any:
    """What the consumer applied of the events whose aggregates start with ``prefix``: how
    many rows, how many events, how many applied after a later event of their aggregate,
    and the lag from publish to effect."""
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "WITH e AS (SELECT e.*, o.occurred_at, lag(e.n) OVER"
                    "   (PARTITION BY e.aggregate_id ORDER BY e.id) AS before"
                    "   FROM probe.effect e JOIN profile.outbox o ON o.id = e.event_id"
                    "   WHERE e.aggregate_id LIKE :prefix)"
                    " SELECT count(*) AS applied, count(DISTINCT event_id) AS distinct_events,"
                    " count(*) FILTER (WHERE before > n) AS out_of_order,"
                    " min(occurred_at) AS first_at, max(applied_at) AS last_at,"
                    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
                    "   applied_at - occurred_at)) AS p50,"
                    " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM"
                    "   applied_at - occurred_at)) AS p99"
                    " FROM e"
                ),
                {"prefix": f"{prefix}%"},
            )
        ).one()


async def run(
    found: Scratch,
    *,
    events: int,
    aggregates: int,
    relays: int,
    batch: int,
    producers: int,
    drain: int,
    prune_share: float = 0.5,
) -> Result:
    total = events
    # Each aggregate's events all from one producer (event n is producer n % producers's).
    aggregates = -(-aggregates // producers) * producers
    assert found.database_url is not None
    database_url = found.database_url
    # The relay's development key, here and in the consumer's process: the bench's own,
    # not the one of a system run from this directory.
    os.environ["KEEPWELL_DATA_DIR"] = str(found.dir / "data")
    context = multiprocessing.get_context("spawn")
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(migrations.upgrade, database_url)
        engine = create_engine(database_url, pool_size=2)
        stack.push_async_callback(engine.dispose)
        probe = ProbeConsumer()
        await probe.create_tables(engine)

        port = free_port()
        consumer = _spawn(_serve_probe, database_url, port)
        stack.callback(consumer.join, 10)
        stack.callback(consumer.terminate)
        probe_url = f"http://127.0.0.1:{port}"
        await _wait_until_up(probe_url)

        # End to end: producers, relays and the consumer each in processes of their own.
        produced = context.Event()
        started = time.perf_counter()
        relaying = [_spawn(_relay, database_url, probe_url, produced) for _ in range(relays)]
        writing = [
            _spawn(_produce_share, database_url, i, producers, total, batch, aggregates)
            for i in range(producers)
        ]
        await asyncio.to_thread(_join, writing, "producer")
        produced_seconds = time.perf_counter() - started
        produced.set()
        await asyncio.to_thread(_join, relaying, "relay")
        seconds = time.perf_counter() - started
        row = await _applied(engine, "agg-")

        # The drain: a pre-filled outbox, two relays (or --relays), nothing else running.
        drained: dict[str, Any] = {}
        if drain:
            await _fill(engine, drain, aggregates, first=total)
            done = context.Event()
            done.set()
            drain_started = time.perf_counter()
            draining = [_spawn(_relay, database_url, probe_url, done) for _ in range(relays)]
            await asyncio.to_thread(_join, draining, "relay")
            drain_seconds = time.perf_counter() - drain_started
            d = await _applied(engine, "drain-")
            drained = {
                "deliveries": drain,
                "relays": relays,
                "seconds": round(drain_seconds, 2),
                "per_second": round(drain / drain_seconds, 1),
                "applied_twice": d.applied - d.distinct_events,
                "lost": drain - d.distinct_events,
                "out_of_order": d.out_of_order,
            }
        pruned = await _prune(engine, total, prune_share)
        await probe.drop_tables(engine)
    end_to_end = round(total / seconds, 1)
    produced_rate = round(total / produced_seconds, 1)
    return Result(
        # How many events a second reach their consumer's effect, next to how many a second
        # the producers wrote: a ratio near 1 means the relays keep up with the writes.
        headline=Figure("events_per_second", end_to_end, "events/s, publish to effect"),
        comparison=Figure("produced_per_second", produced_rate, "events/s written to the outbox"),
        duplicates=row.applied - row.distinct_events + drained.get("applied_twice", 0),
        lost=total - row.distinct_events + drained.get("lost", 0),
        details={
            "events": total,
            "aggregates": aggregates,
            "producers": producers,
            "events_per_transaction": batch,
            "relays": relays,
            "seconds": round(seconds, 2),
            "events_per_second": end_to_end,
            "produce_seconds": round(produced_seconds, 2),
            "produced_per_second": produced_rate,
            "applied": row.applied,
            "applied_twice": row.applied - row.distinct_events,
            "out_of_order": row.out_of_order,
            "lag_p50_seconds": round(float(row.p50), 3),
            "lag_p99_seconds": round(float(row.p99), 3),
            "drain": drained,
            "prune": pruned,
        },
    )
