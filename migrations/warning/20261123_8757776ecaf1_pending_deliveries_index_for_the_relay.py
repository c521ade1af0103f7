"""pending-deliveries index for the relay

Revision ID: 8757776ecaf1
Revises: e04dd9214259
Created: 2026-11-23 17:03:22.105983
"""

from collections.abc import Sequence

from migrations import event_tables_v2

revision: str = "8757776ecaf1"
down_revision: str | None = "e04dd9214259"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v2.upgrade("warning")


def downgrade() -> None:
    event_tables_v2.downgrade("warning")
