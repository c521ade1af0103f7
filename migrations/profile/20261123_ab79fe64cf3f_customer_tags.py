"""customer tags

Revision ID: ab79fe64cf3f
Revises: fa399bba35f6
Created: 2026-11-23 18:04:46.172698
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ab79fe64cf3f"
down_revision: str | None = "fa399bba35f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customer",
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        schema="profile",
    )
    # The default only fills rows that exist already; the application writes every column.
    op.alter_column("customer", "tags", server_default=None, schema="profile")


def downgrade() -> None:
    op.drop_column("customer", "tags", schema="profile")
