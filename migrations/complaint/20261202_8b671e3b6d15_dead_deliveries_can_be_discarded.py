"""dead deliveries can be discarded

Revision ID: 8b671e3b6d15
Revises: 722707d4ff98
Created: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v5

revision: str = "8b671e3b6d15"
down_revision: str | None = "722707d4ff98"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v5.upgrade("complaint")


def downgrade() -> None:
    event_tables_v5.downgrade("complaint")
