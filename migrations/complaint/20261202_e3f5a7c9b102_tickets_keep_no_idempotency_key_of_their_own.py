"""tickets keep no idempotency key of their own

The kernel's ``idempotency_key`` table answers a retried ``POST /complaints`` now, per
caller; a ticket's own key column (global, unique) would have answered another caller's
retry with someone else's ticket.

Revision ID: e3f5a7c9b102
Revises: c6e08b2d9a14
Created: 2026-12-02 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3f5a7c9b102"
down_revision: str | None = "c6e08b2d9a14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(
        op.f("uq_ticket_idempotency_key"), "ticket", schema="complaint", type_="unique"
    )
    op.drop_column("ticket", "idempotency_key", schema="complaint")


def downgrade() -> None:
    op.add_column(
        "ticket",
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        schema="complaint",
    )
    op.create_unique_constraint(
        op.f("uq_ticket_idempotency_key"), "ticket", ["idempotency_key"], schema="complaint"
    )
