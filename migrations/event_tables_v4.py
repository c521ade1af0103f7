"""Version 4 of the event tables: indexes on the age of outbox rows (``occurred_at``) and
inbox rows (``processed_at``), so that pruning takes the oldest rows in batches without
reading the table. Frozen, like versions 1 to 3.

Built inside the migration's transaction (not ``CONCURRENTLY``): writes to the outbox and
the inbox wait while each index is built, seconds per million rows.
"""

from alembic import op


def upgrade(schema: str) -> None:
    op.create_index(f"ix_{schema}_outbox_occurred_at", "outbox", ["occurred_at"], schema=schema)
    op.create_index(f"ix_{schema}_inbox_processed_at", "inbox", ["processed_at"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_index(f"ix_{schema}_inbox_processed_at", table_name="inbox", schema=schema)
    op.drop_index(f"ix_{schema}_outbox_occurred_at", table_name="outbox", schema=schema)
