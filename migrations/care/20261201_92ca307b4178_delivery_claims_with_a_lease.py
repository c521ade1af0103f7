"""delivery claims with a lease

Revision ID: 92ca307b4178
Revises: de17337b8a21
Created: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

from migrations import event_tables_v3

revision: str = "92ca307b4178"
down_revision: str | None = "de17337b8a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v3.upgrade("care")


def downgrade() -> None:
    event_tables_v3.downgrade("care")
