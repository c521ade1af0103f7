"""Writing events: the outbox row and its deliveries, in the caller's transaction."""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from datetime import UTC, datetime
from functools import cache

from arq.connections import ArqRedis
from asgi_correlation_id import correlation_id
from sqlalchemy import TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.config import SERVICES
from services.kit.db import after_commit
from services.kit.events.consumer import consumers
from services.kit.events.model import Event
from services.kit.events.tables import event_tables

RELAY_JOB = "relay_events"


@cache
def load_event_modules() -> None:
    """Import every service's ``events`` module: event types and consumers register then."""
    for service in SERVICES:
        if importlib.util.find_spec(f"services.{service}.events") is not None:
            importlib.import_module(f"services.{service}.events")


def service_subscribers(event_type: str) -> list[str]:
    """Our own services that consume ``event_type``, as delivery subscriber names."""
    load_event_modules()
    return [f"service:{c.service}" for c in consumers() if event_type in c.handled_types]


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
    event_id = uuid.uuid4()
    webhooks = await _webhooks(session, event)
    subscribers = service_subscribers(event.event_type) + [f"webhook:{w}" for w in webhooks]
    # One round trip: the outbox row and its deliveries together.
    await session.execute(
        _insert_sql(event.producer),
        {
            "id": event_id,
            "type": event.event_type,
            "version": event.version,
            "aggregate_id": aggregate_id,
            "occurred_at": datetime.now(UTC),
            "payload": event.model_dump_json(),
            "request_id": correlation_id.get(),
            "actor": actor,
            "subscribers": subscribers,
        },
    )
    if subscribers:
        redis: ArqRedis | None = session.info.get("redis")
        if redis is not None and not session.info.get("relay_nudged"):
            session.info["relay_nudged"] = True
            after_commit(session, lambda: nudge_relay(redis, event.producer))
    return event_id


@cache
def _insert_sql(producer: str) -> TextClause:
    return text(
        f"""
        WITH event AS (
            INSERT INTO {producer}.outbox
                (id, type, version, aggregate_id, occurred_at, payload, request_id, actor)
            VALUES (:id, :type, :version, :aggregate_id, :occurred_at, CAST(:payload AS jsonb),
                    :request_id, :actor)
            RETURNING seq)
        INSERT INTO {producer}.delivery (event_seq, subscriber, aggregate_id)
        SELECT event.seq, subscriber, :aggregate_id
        FROM event, unnest(CAST(:subscribers AS varchar[])) AS subscriber
        """
    )


async def _webhooks(session: AsyncSession, event: Event) -> list[uuid.UUID]:
    """Active partner subscriptions to this event type, looked up once per transaction."""
    cache: dict[tuple[str, str], list[uuid.UUID]] = session.info.setdefault("webhooks", {})
    key = (event.producer, event.event_type)
    if key not in cache:
        tables = event_tables(event.producer)
        cache[key] = list(
            (
                await session.execute(
                    select(tables.webhook.c.id).where(
                        tables.webhook.c.active,
                        tables.webhook.c.event_types.contains([event.event_type]),
                    )
                )
            ).scalars()
        )
    return cache[key]


async def nudge_relay(redis: ArqRedis, producer: str) -> None:
    from services.kit.redis import queue_name

    # One waiting relay job is enough: it loops until nothing is due.
    await redis.enqueue_job(
        RELAY_JOB, _job_id=f"{RELAY_JOB}:{producer}", _queue_name=queue_name(producer)
    )
