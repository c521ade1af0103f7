"""dead deliveries can be discarded

Revision ID: 44fc4bb156ea
Revises: b847a8399420
Created: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

from migrations import event_tables_v5

revision: str = "44fc4bb156ea"
down_revision: str | None = "b847a8399420"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v5.upgrade("warning")


def downgrade() -> None:
    event_tables_v5.downgrade("warning")
