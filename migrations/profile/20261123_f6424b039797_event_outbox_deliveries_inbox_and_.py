"""event outbox, deliveries, inbox and webhooks

Revision ID: f6424b039797
Revises: 89e47e8b640a
Created: 2026-11-23 15:35:45.995748
"""

from collections.abc import Sequence

from migrations import event_tables_v1

revision: str = "f6424b039797"
down_revision: str | None = "89e47e8b640a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v1.create("profile")


def downgrade() -> None:
    event_tables_v1.drop("profile")
