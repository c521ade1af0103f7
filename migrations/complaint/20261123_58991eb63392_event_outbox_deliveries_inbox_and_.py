"""event outbox, deliveries, inbox and webhooks

Revision ID: 58991eb63392
Revises:
Created: 2026-11-23 15:35:57.265410
"""

from collections.abc import Sequence

from migrations import event_tables_v1

revision: str = "58991eb63392"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v1.create("complaint")


def downgrade() -> None:
    event_tables_v1.drop("complaint")
