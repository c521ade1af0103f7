"""Version 2 of the event tables: partial indexes of pending deliveries, by sequence (what
the relay locks next) and by (subscriber, aggregate, sequence) (what holds a delivery
back). Frozen, like version 1.
"""

import sqlalchemy as sa
from alembic import op


def upgrade(schema: str) -> None:
    op.drop_index(
        f"ix_{schema}_delivery_due",
        table_name="delivery",
        schema=schema,
        postgresql_where="((status)::text = 'pending'::text)",
    )
    op.drop_index(f"ix_{schema}_delivery_order", table_name="delivery", schema=schema)
    op.create_index(
        f"ix_{schema}_delivery_pending",
        "delivery",
        ["subscriber", "aggregate_id", "event_seq"],
        unique=False,
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        f"ix_{schema}_delivery_next",
        "delivery",
        ["event_seq"],
        unique=False,
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        f"ix_{schema}_delivery_subscriber",
        "delivery",
        ["subscriber", "id"],
        unique=False,
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_index(f"ix_{schema}_delivery_subscriber", table_name="delivery", schema=schema)
    op.drop_index(
        f"ix_{schema}_delivery_next",
        table_name="delivery",
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        f"ix_{schema}_delivery_pending",
        table_name="delivery",
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
    op.create_index(
        f"ix_{schema}_delivery_due",
        "delivery",
        ["next_attempt_at"],
        unique=False,
        schema=schema,
        postgresql_where="((status)::text = 'pending'::text)",
    )
