"""event outbox, deliveries, inbox and webhooks

Revision ID: 2ec3aa33872d
Revises:
Created: 2026-11-23 15:35:53.559102
"""

from collections.abc import Sequence

from migrations import event_tables_v1

revision: str = "2ec3aa33872d"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v1.create("care")


def downgrade() -> None:
    event_tables_v1.drop("care")
