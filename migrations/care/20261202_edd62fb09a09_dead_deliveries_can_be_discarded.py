"""dead deliveries can be discarded

Revision ID: edd62fb09a09
Revises: 5f0f530d7b3c
Created: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v5

revision: str = "edd62fb09a09"
down_revision: str | None = "5f0f530d7b3c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v5.upgrade("care")


def downgrade() -> None:
    event_tables_v5.downgrade("care")
