"""pending-deliveries index for the relay

Revision ID: 8bdb315b298a
Revises: 58991eb63392
Created: 2026-11-23 17:03:33.312892
"""

from collections.abc import Sequence

from migrations import event_tables_v2

revision: str = "8bdb315b298a"
down_revision: str | None = "58991eb63392"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v2.upgrade("complaint")


def downgrade() -> None:
    event_tables_v2.downgrade("complaint")
