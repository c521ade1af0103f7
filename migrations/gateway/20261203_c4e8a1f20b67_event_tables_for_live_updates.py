"""event tables for live updates

The gateway subscribes to the services' events (gateway/live/): its inbox, and the rest of
the kernel's event tables as every schema has them, built the way the services' were.

Revision ID: c4e8a1f20b67
Revises: 84849443c051
Created: 2026-12-03 08:40:00
"""

from collections.abc import Sequence

from migrations import (
    event_tables_v1,
    event_tables_v2,
    event_tables_v3,
    event_tables_v4,
    event_tables_v5,
)

revision: str = "c4e8a1f20b67"
down_revision: str | None = "84849443c051"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LATER = (event_tables_v2, event_tables_v3, event_tables_v4, event_tables_v5)


def upgrade() -> None:
    event_tables_v1.create("gateway")
    for version in _LATER:
        version.upgrade("gateway")


def downgrade() -> None:
    for version in reversed(_LATER):
        version.downgrade("gateway")
    event_tables_v1.drop("gateway")
