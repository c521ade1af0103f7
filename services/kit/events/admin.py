"""What operators do with deliveries: list the dead ones, replay one or discard it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.config import get_settings
from services.kit.errors import Conflict, NotFound
from services.kit.events.prune import accepts_since
from services.kit.events.tables import DeliveryStatus, event_tables


class DeliveryRead(BaseModel):
    """One event's delivery to one subscriber, as operators and partners see it."""

    id: str  # "<producer>:<number>", what `keepwell events replay` takes
    event_id: str
    event_type: str
    aggregate_id: str
    subscriber: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    occurred_at: datetime
    discarded_at: datetime | None = None
    discarded_by: str | None = None
    discard_reason: str | None = None


def delivery_ref(producer: str, delivery_id: int) -> str:
    return f"{producer}:{delivery_id}"


def parse_delivery_ref(ref: str) -> tuple[str, int]:
    producer, _, number = ref.partition(":")
    if not producer or not number.isdigit():
        raise ValueError(f"须为 <服务>:<编号>，如 profile:42，而不是 {ref!r}")
    return producer, int(number)


def _select(producer: str) -> Any:
    t = event_tables(producer)
    return select(
        t.delivery.c.id,
        t.outbox.c.id.label("event_id"),
        t.outbox.c.type,
        t.delivery.c.aggregate_id,
        t.delivery.c.subscriber,
        t.delivery.c.status,
        t.delivery.c.attempts,
        t.delivery.c.last_error,
        t.delivery.c.next_attempt_at,
        t.delivery.c.delivered_at,
        t.outbox.c.occurred_at,
        t.delivery.c.discarded_at,
        t.delivery.c.discarded_by,
        t.delivery.c.discard_reason,
    ).join(t.outbox, t.outbox.c.seq == t.delivery.c.event_seq)


def _read(producer: str, row: Any) -> DeliveryRead:
    return DeliveryRead(
        id=delivery_ref(producer, row.id),
        event_id=str(row.event_id),
        event_type=row.type,
        aggregate_id=row.aggregate_id,
        subscriber=row.subscriber,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        occurred_at=row.occurred_at,
        discarded_at=row.discarded_at,
        discarded_by=row.discarded_by,
        discard_reason=row.discard_reason,
    )


async def list_deliveries(
    session: AsyncSession,
    producer: str,
    *,
    status: DeliveryStatus | None = None,
    subscriber: str | None = None,
    limit: int = 100,
) -> list[DeliveryRead]:
    t = event_tables(producer)
    query = _select(producer).order_by(t.delivery.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(t.delivery.c.status == status.value)
    if subscriber is not None:
        query = query.where(t.delivery.c.subscriber == subscriber)
    return [_read(producer, row) for row in (await session.execute(query)).all()]


async def replay(
    session: AsyncSession,
    producer: str,
    delivery_id: int,
    *,
    subscriber: str | None = None,
    retention: timedelta | None = None,
) -> DeliveryRead:
    """Deliver again from scratch: a dead or discarded delivery, or a delivered one a
    partner lost.
    With ``subscriber``, only a delivery to that subscriber is found. A delivery to one of
    our services is replayed only within the event retention (default: the setting): past
    it, the consumer's inbox may have forgotten the event and would refuse it as expired
    (services/kit/events/prune.py)."""
    t = event_tables(producer)
    # Locked first: pruning skips a delivery held here, or has deleted it (not found).
    query = _select(producer).where(t.delivery.c.id == delivery_id).with_for_update(of=t.delivery)
    if subscriber is not None:
        query = query.where(t.delivery.c.subscriber == subscriber)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"找不到投递记录 {delivery_ref(producer, delivery_id)}", field="id")
    if row.status == DeliveryStatus.pending.value:
        raise Conflict("该投递仍在等待中，转发程序会投递它", field="id")
    retention = retention or timedelta(days=get_settings().event_retention_days)
    if row.subscriber.startswith("service:") and row.occurred_at < accepts_since(retention):
        raise Conflict(
            f"该事件发生于 {row.occurred_at:%Y-%m-%d %H:%M} UTC，已超过事件保留期"
            f"（{retention.days} 天）：订阅服务已无法分辨它是否处理过，不能重放",
            field="id",
        )
    await session.execute(
        update(t.delivery)
        .where(t.delivery.c.id == delivery_id)
        .values(
            status=DeliveryStatus.pending.value,
            attempts=0,
            next_attempt_at=func.now(),
            last_error=None,
            delivered_at=None,
            discarded_at=None,
            discarded_by=None,
            discard_reason=None,
        )
    )
    return await _reread(session, producer, delivery_id)


async def discard(
    session: AsyncSession, producer: str, delivery_id: int, *, by: str, reason: str
) -> DeliveryRead:
    """Give up on a dead delivery: it is never sent again unless replayed, and pruning may
    take its event once the retention has passed since the discard (a dead delivery keeps
    its event for ever). Who discarded it, when and why stay on the row."""
    t = event_tables(producer)
    status = (
        await session.execute(
            select(t.delivery.c.status).where(t.delivery.c.id == delivery_id).with_for_update()
        )
    ).scalar_one_or_none()
    if status is None:
        raise NotFound(f"找不到投递记录 {delivery_ref(producer, delivery_id)}", field="id")
    if status != DeliveryStatus.dead.value:
        raise Conflict(f"只能弃置失败（dead）的投递，该投递为 {status}", field="id")
    await session.execute(
        update(t.delivery)
        .where(t.delivery.c.id == delivery_id)
        .values(
            status=DeliveryStatus.discarded.value,
            discarded_at=clock.now(),
            discarded_by=by,
            discard_reason=reason,
        )
    )
    return await _reread(session, producer, delivery_id)


async def _reread(session: AsyncSession, producer: str, delivery_id: int) -> DeliveryRead:
    t = event_tables(producer)
    row = (await session.execute(_select(producer).where(t.delivery.c.id == delivery_id))).one()
    return _read(producer, row)
