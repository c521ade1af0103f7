"""pending-deliveries index for the relay

Revision ID: 24b586aeee2c
Revises: 79dc3c9d2a12
Created: 2026-11-23 17:03:28.134138
"""

from collections.abc import Sequence

from migrations import event_tables_v2

revision: str = "24b586aeee2c"
down_revision: str | None = "79dc3c9d2a12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v2.upgrade("care")


def downgrade() -> None:
    event_tables_v2.downgrade("care")
