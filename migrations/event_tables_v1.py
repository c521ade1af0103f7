"""Version 1 of the event tables every service has (outbox, delivery, delivery_attempt,
inbox, webhook_subscription), shared by each service's migration that introduced them.

Frozen: a later change to the event tables is a new revision in each service (and, if it
is shared, a ``event_tables_v2`` here), never an edit of this file.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create(schema: str) -> None:
    """Create the event tables in ``schema``."""
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("producer", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_inbox")),
        schema=schema,
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("aggregate_id", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
        schema=schema,
    )
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("event_types", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscription")),
        schema=schema,
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("subscriber", sa.String(length=120), nullable=False),
        sa.Column("aggregate_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name=op.f("ck_delivery_status")
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            [f"{schema}.outbox.seq"],
            name=op.f("fk_delivery_event_seq_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint(
            "event_seq", "subscriber", name=op.f("uq_delivery_event_seq_subscriber")
        ),
        schema=schema,
    )
    op.create_index(
        f"ix_{schema}_delivery_due",
        "delivery",
        ["next_attempt_at"],
        unique=False,
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        f"ix_{schema}_delivery_order",
        "delivery",
        ["subscriber", "aggregate_id", "event_seq"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("milliseconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [f"{schema}.delivery.id"],
            name=op.f("fk_delivery_attempt_delivery_id_delivery"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempt")),
        schema=schema,
    )
    op.create_index(
        op.f("ix_delivery_attempt_delivery_id"),
        "delivery_attempt",
        ["delivery_id"],
        unique=False,
        schema=schema,
    )


def drop(schema: str) -> None:
    """Drop the event tables from ``schema``."""
    op.drop_index(
        op.f("ix_delivery_attempt_delivery_id"), table_name="delivery_attempt", schema=schema
    )
    op.drop_table("delivery_attempt", schema=schema)
    op.drop_index(f"ix_{schema}_delivery_order", table_name="delivery", schema=schema)
    op.drop_index(
        f"ix_{schema}_delivery_due",
        table_name="delivery",
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("delivery", schema=schema)
    op.drop_table("webhook_subscription", schema=schema)
    op.drop_table("outbox", schema=schema)
    op.drop_table("inbox", schema=schema)
