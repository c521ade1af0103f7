"""delivery claims with a lease

Revision ID: 122673cf1184
Revises: 8bdb315b298a
Created: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

from migrations import event_tables_v3

revision: str = "122673cf1184"
down_revision: str | None = "8bdb315b298a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v3.upgrade("complaint")


def downgrade() -> None:
    event_tables_v3.downgrade("complaint")
