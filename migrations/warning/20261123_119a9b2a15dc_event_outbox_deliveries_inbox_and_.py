"""event outbox, deliveries, inbox and webhooks

Revision ID: 119a9b2a15dc
Revises: 34ec18edfff7
Created: 2026-11-23 15:35:50.018950
"""

from collections.abc import Sequence

from migrations import event_tables_v1

revision: str = "119a9b2a15dc"
down_revision: str | None = "34ec18edfff7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v1.create("warning")


def downgrade() -> None:
    event_tables_v1.drop("warning")
