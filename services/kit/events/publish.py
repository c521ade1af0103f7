"""Writing events: the outbox row and its deliveries, in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache

from arq.connections import ArqRedis
from asgi_correlation_id import correlation_id
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.db import after_commit
from services.kit.events.contracts import configured, consumers_of
from services.kit.events.model import Event

RELAY_JOB = "relay_events"


def service_subscribers(event_type: str) -> list[str]:
    """Our own processes (services, the gateway) that consume ``event_type`` and take
    deliveries here, as delivery subscriber names."""
    return [f"service:{name}" for name in consumers_of(event_type) if configured(name)]


async def publish(
    session: AsyncSession,
    event: Event,
    *,
    aggregate_id: str,
    actor: str | None = None,
) -> uuid.UUID:
    """Record ``event`` in its producer's outbox, with a delivery for every subscriber.

    Nothing leaves the database here: the relay delivers after commit. The relay is nudged
    once the transaction commits, and a periodic sweep catches any nudge that is lost.
    """
    (event_id,) = await publish_many(session, [(event, aggregate_id)], actor=actor)
    return event_id


PUBLISH_CHUNK = 5000


async def publish_many(
    session: AsyncSession,
    events: Sequence[tuple[Event, str]],
    *,
    actor: str | None = None,
) -> list[uuid.UUID]:
    """:func:`publish` for many ``(event, aggregate_id)`` pairs of one producer, kept in
    order, in a few statements: for jobs that change thousands of rows at once."""
    if not events:
        return []
    producers = {event.producer for event, _ in events}
    if len(producers) != 1:
        raise ValueError(f"publish_many takes events of one producer, not {sorted(producers)}")
    producer = producers.pop()
    ids = [uuid.uuid4() for _ in events]
    types = sorted({event.event_type for event, _ in events})
    subscriptions = [(t, s) for t in types for s in service_subscribers(t)]
    occurred_at = clock.now()
    deliveries = 0
    for start in range(0, len(events), PUBLISH_CHUNK):
        chunk = events[start : start + PUBLISH_CHUNK]
        result = await session.execute(
            _insert_sql(producer),
            {
                "ids": ids[start : start + len(chunk)],
                "types": [event.event_type for event, _ in chunk],
                "versions": [event.version for event, _ in chunk],
                "aggregate_ids": [aggregate for _, aggregate in chunk],
                "payloads": [event.model_dump_json() for event, _ in chunk],
                "occurred_at": occurred_at,
                "request_id": correlation_id.get(),
                "actor": actor,
                "sub_types": [t for t, _ in subscriptions],
                "sub_names": [s for _, s in subscriptions],
            },
        )
        deliveries += result.rowcount  # type: ignore[attr-defined]
    redis: ArqRedis | None = session.info.get("redis")
    nudged: set[str] = session.info.setdefault("relay_nudged", set())
    if deliveries and redis is not None and producer not in nudged:
        nudged.add(producer)
        after_commit(session, lambda: nudge_relay(redis, producer))
    return ids


@cache
def _insert_sql(producer: str) -> TextClause:
    # One round trip: the outbox rows, in the given order, and their deliveries: one per
    # service that consumes the type, and one per partner's active webhook subscribed to it.
    return text(
        f"""
        WITH input AS (
            SELECT * FROM unnest(
                CAST(:ids AS uuid[]), CAST(:types AS varchar[]), CAST(:versions AS int[]),
                CAST(:aggregate_ids AS varchar[]), CAST(:payloads AS jsonb[])
            ) WITH ORDINALITY AS i(id, type, version, aggregate_id, payload, position)
        ), event AS (
            INSERT INTO {producer}.outbox
                (id, type, version, aggregate_id, occurred_at, payload, request_id, actor)
            SELECT id, type, version, aggregate_id, :occurred_at, payload, :request_id, :actor
            FROM input ORDER BY position
            RETURNING seq, type, aggregate_id
        ), subscriber AS (
            SELECT type, name
            FROM unnest(CAST(:sub_types AS varchar[]), CAST(:sub_names AS varchar[]))
                AS s(type, name)
            UNION ALL
            SELECT t.type, 'webhook:' || w.id
            FROM (SELECT DISTINCT type FROM input) AS t
            JOIN {producer}.webhook_subscription AS w
                ON w.active AND w.event_types @> to_jsonb(ARRAY[t.type])
        )
        INSERT INTO {producer}.delivery (event_seq, subscriber, aggregate_id)
        SELECT event.seq, subscriber.name, event.aggregate_id
        FROM event JOIN subscriber ON subscriber.type = event.type
        """
    )


async def nudge_relay(redis: ArqRedis, producer: str) -> None:
    from services.kit.redis import queue_name

    # One waiting relay job is enough: it loops until nothing is due.
    await redis.enqueue_job(
        RELAY_JOB, _job_id=f"{RELAY_JOB}:{producer}", _queue_name=queue_name(producer)
    )
