"""Version 1 of the table every service keeps its ``Idempotency-Key`` answers in
(``<schema>.idempotency_key``, services/kit/idempotency.py), shared by each service's
migration that introduced it.

Frozen: a later change is a new revision in each service (and, if shared, an
``idempotency_v2`` here), never an edit of this file.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create(schema: str) -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "route", "key", name=op.f("pk_idempotency_key")),
        schema=schema,
    )
    # The hourly prune deletes by expiry.
    op.create_index(
        op.f("ix_idempotency_key_expires_at"),
        "idempotency_key",
        ["expires_at"],
        unique=False,
        schema=schema,
    )


def drop(schema: str) -> None:
    op.drop_index(
        op.f("ix_idempotency_key_expires_at"), table_name="idempotency_key", schema=schema
    )
    op.drop_table("idempotency_key", schema=schema)
