"""indexes for pruning the event tables

Revision ID: b847a8399420
Revises: 8d2f4a6c1e37
Created: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v4

revision: str = "b847a8399420"
down_revision: str | None = "8d2f4a6c1e37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v4.upgrade("warning")


def downgrade() -> None:
    event_tables_v4.downgrade("warning")
