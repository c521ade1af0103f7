"""campaigns belong to a team

Revision ID: 5c1e0a7b9d21
Revises: 92ca307b4178
Created: 2026-12-01 22:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e0a7b9d21"
down_revision: str | None = "92ca307b4178"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign", sa.Column("team_id", sa.String(length=32), nullable=True), schema="care"
    )


def downgrade() -> None:
    op.drop_column("campaign", "team_id", schema="care")
