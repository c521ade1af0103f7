"""indexes for pruning the event tables

Revision ID: 5f0f530d7b3c
Revises: b4d1e7a9c3f0
Created: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v4

revision: str = "5f0f530d7b3c"
down_revision: str | None = "b4d1e7a9c3f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v4.upgrade("care")


def downgrade() -> None:
    event_tables_v4.downgrade("care")
