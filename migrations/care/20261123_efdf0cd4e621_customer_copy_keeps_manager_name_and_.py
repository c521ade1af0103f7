"""customer copy keeps manager name and interests

Revision ID: efdf0cd4e621
Revises: 9a6b4fb9dd48
Created: 2026-11-23 18:05:28.620480
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "efdf0cd4e621"
down_revision: str | None = "9a6b4fb9dd48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customer",
        sa.Column("manager_name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        schema="care",
    )
    op.add_column(
        "customer",
        sa.Column(
            "interests",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        schema="care",
    )
    # The default only fills rows that exist already; the application writes every column.
    op.alter_column("customer", "interests", server_default=None, schema="care")
    # Copies kept before this held the manager's name (if at all) in the custom attributes;
    # it serves until the next profile event or `keepwell care rebuild-customers`.
    op.execute(
        "UPDATE care.customer SET manager_name = left(btrim(custom->>'manager_name'), 50) "
        "WHERE coalesce(btrim(custom->>'manager_name'), '') <> ''"
    )


def downgrade() -> None:
    op.drop_column("customer", "interests", schema="care")
    op.drop_column("customer", "manager_name", schema="care")
