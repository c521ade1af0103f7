"""safelisted operations

Revision ID: b7e4d1c09a3f
Revises: 3f1c2a7d5e90
Created: 2026-12-02 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b7e4d1c09a3f"
down_revision: str | None = "3f1c2a7d5e90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operation",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("registered_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation")),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("operation", schema="gateway")
