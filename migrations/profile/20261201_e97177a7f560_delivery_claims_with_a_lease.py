"""delivery claims with a lease

Revision ID: e97177a7f560
Revises: ab79fe64cf3f
Created: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

from migrations import event_tables_v3

revision: str = "e97177a7f560"
down_revision: str | None = "ab79fe64cf3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v3.upgrade("profile")


def downgrade() -> None:
    event_tables_v3.downgrade("profile")
