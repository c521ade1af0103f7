"""dead deliveries can be discarded

Revision ID: 144c04cbb321
Revises: 5f59f22a7093
Created: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v5

revision: str = "144c04cbb321"
down_revision: str | None = "5f59f22a7093"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v5.upgrade("profile")


def downgrade() -> None:
    event_tables_v5.downgrade("profile")
