"""rate limits of api keys

Revision ID: 3f1c2a7d5e90
Revises: 9786d9ed820d
Created: 2026-12-02 06:08:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f1c2a7d5e90"
down_revision: str | None = "9786d9ed820d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_key", sa.Column("rate_per_minute", sa.Integer(), nullable=True), schema="gateway"
    )


def downgrade() -> None:
    op.drop_column("api_key", "rate_per_minute", schema="gateway")
