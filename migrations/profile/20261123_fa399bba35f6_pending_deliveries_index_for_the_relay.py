"""pending-deliveries index for the relay

Revision ID: fa399bba35f6
Revises: f7ae6e4994a2
Created: 2026-11-23 17:03:15.311847
"""

from collections.abc import Sequence

from migrations import event_tables_v2

revision: str = "fa399bba35f6"
down_revision: str | None = "f7ae6e4994a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_tables_v2.upgrade("profile")


def downgrade() -> None:
    event_tables_v2.downgrade("profile")
