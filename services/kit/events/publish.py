"""Writing events: the outbox row and its deliveries, in the caller's transaction."""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from datetime import UTC, datetime
from functools import cache

from arq.connections import ArqRedis
from asgi_correlation_id import correlation_id
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.config import SERVICES
from services.kit.db import after_commit
from services.kit.events.consumer import consumers
from services.kit.events.model import Event
from services.kit.events.tables import event_tables

RELAY_JOB = "relay_events"


@cache
def _load_consumers() -> None:
    # Consumers register when their service's events module is imported.
    for service in SERVICES:
        if importlib.util.find_spec(f"services.{service}.events") is not None:
            importlib.import_module(f"services.{service}.events")


def service_subscribers(event_type: str) -> list[str]:
    """Our own services that consume ``event_type``, as delivery subscriber names."""
    _load_consumers()
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
    tables = event_tables(event.producer)
    event_id = uuid.uuid4()
    seq = (
        await session.execute(
            insert(tables.outbox)
            .values(
                id=event_id,
                type=event.event_type,
                version=event.version,
                aggregate_id=aggregate_id,
                occurred_at=datetime.now(UTC),
                payload=event.model_dump(mode="json"),
                request_id=correlation_id.get(),
                actor=actor,
            )
            .returning(tables.outbox.c.seq)
        )
    ).scalar_one()
    webhooks = (
        await session.execute(
            select(tables.webhook.c.id).where(
                tables.webhook.c.active,
                tables.webhook.c.event_types.contains([event.event_type]),
            )
        )
    ).scalars()
    subscribers = service_subscribers(event.event_type) + [f"webhook:{w}" for w in webhooks]
    if subscribers:
        await session.execute(
            insert(tables.delivery),
            [
                {"event_seq": seq, "subscriber": s, "aggregate_id": aggregate_id}
                for s in subscribers
            ],
        )
        redis: ArqRedis | None = session.info.get("redis")
        if redis is not None and not session.info.get("relay_nudged"):
            session.info["relay_nudged"] = True
            after_commit(session, lambda: nudge_relay(redis, event.producer))
    return event_id


async def nudge_relay(redis: ArqRedis, producer: str) -> None:
    from services.kit.redis import queue_name

    # One waiting relay job is enough: it loops until nothing is due.
    await redis.enqueue_job(
        RELAY_JOB, _job_id=f"{RELAY_JOB}:{producer}", _queue_name=queue_name(producer)
    )
