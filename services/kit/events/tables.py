"""The event tables every service has in its own schema."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.kit.db import metadata


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"
    discarded = "discarded"  # a dead one an operator gave up on (who, when, why kept)


@dataclass(frozen=True)
class EventTables:
    schema: str
    outbox: Table
    delivery: Table
    attempt: Table
    inbox: Table
    webhook: Table


_BY_SCHEMA: dict[str, EventTables] = {}


def event_tables(schema: str) -> EventTables:
    """The outbox, delivery, inbox and webhook tables in ``schema`` (made once)."""
    if schema in _BY_SCHEMA:
        return _BY_SCHEMA[schema]
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("version", Integer, nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("request_id", String(64)),
        Column("actor", String(64)),
        # Pruning takes the oldest events first (services/kit/events/prune.py).
        Index(f"ix_{schema}_outbox_occurred_at", "occurred_at"),
        schema=schema,
    )
    delivery = Table(
        "delivery",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "event_seq",
            BigInteger,
            ForeignKey(f"{schema}.outbox.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        # "service:<name>" for our own consumers, "webhook:<uuid>" for a partner's.
        Column("subscriber", String(120), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("status", String(12), nullable=False, server_default=DeliveryStatus.pending.value),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column(
            "next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()
        ),
        Column("last_error", Text),
        Column("delivered_at", DateTime(timezone=True)),
        # A relay's claim: the token it records results under, and until when the row is
        # its own (after that another relay may take the row again).
        Column("claim", Uuid),
        Column("leased_until", DateTime(timezone=True)),
        Column("discarded_at", DateTime(timezone=True)),
        Column("discarded_by", String(64)),
        Column("discard_reason", Text),
        UniqueConstraint("event_seq", "subscriber"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead', 'discarded')", name="status"),
        # The relay locks the next pending deliveries by sequence, then holds back any whose
        # (subscriber, aggregate) has an earlier pending one outside its batch.
        Index(
            f"ix_{schema}_delivery_next",
            "event_seq",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            f"ix_{schema}_delivery_pending",
            "subscriber",
            "aggregate_id",
            "event_seq",
            postgresql_where=text("status = 'pending'"),
        ),
        # Partners' delivery logs and operators' lists, newest first.
        Index(f"ix_{schema}_delivery_subscriber", "subscriber", "id"),
        schema=schema,
    )
    attempt = Table(
        "delivery_attempt",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "delivery_id",
            BigInteger,
            ForeignKey(f"{schema}.delivery.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("status_code", Integer),
        Column("error", Text),
        Column("milliseconds", Integer, nullable=False),
        schema=schema,
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("producer", String(32), nullable=False),
        Column("type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Pruning takes the oldest rows first (services/kit/events/prune.py).
        Index(f"ix_{schema}_inbox_processed_at", "processed_at"),
        schema=schema,
    )
    webhook = Table(
        "webhook_subscription",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("partner", String(100), nullable=False),
        Column("url", String(500), nullable=False),
        Column("secret", String(200), nullable=False),
        Column("event_types", JSONB, nullable=False),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("created_by", String(64), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )
    tables = EventTables(schema, outbox, delivery, attempt, inbox, webhook)
    _BY_SCHEMA[schema] = tables
    return tables
