"""indexes for pruning the event tables

Revision ID: 5f59f22a7093
Revises: 3b7e1c9a5d20
Created: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v4

revision: str = "5f59f22a7093"
down_revision: str | None = "3b7e1c9a5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v4.upgrade("profile")


def downgrade() -> None:
    event_tables_v4.downgrade("profile")
