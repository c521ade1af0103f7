"""indexes for pruning the event tables

Revision ID: 722707d4ff98
Revises: e3f5a7c9b102
Created: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v4

revision: str = "722707d4ff98"
down_revision: str | None = "e3f5a7c9b102"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v4.upgrade("complaint")


def downgrade() -> None:
    event_tables_v4.downgrade("complaint")
