"""delivery claims with a lease

Revision ID: 0e50d6a8dfd8
Revises: 8757776ecaf1
Created: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

from migrations import event_tables_v3

revision: str = "0e50d6a8dfd8"
down_revision: str | None = "8757776ecaf1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v3.upgrade("warning")


def downgrade() -> None:
    event_tables_v3.downgrade("warning")
