"""urgent alerts and task completion

Revision ID: 9a6b4fb9dd48
Revises: 24b586aeee2c
Created: 2026-11-23 18:02:20.681047
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "9a6b4fb9dd48"
down_revision: str | None = "24b586aeee2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing campaigns are not urgent; the default only backfills them.
    op.add_column(
        "campaign",
        sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="care",
    )
    op.alter_column("campaign", "urgent", server_default=None, schema="care")
    op.add_column(
        "task", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True), schema="care"
    )
    op.add_column(
        "task",
        sa.Column("completed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        schema="care",
    )
    op.add_column(
        "task",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        schema="care",
    )
    op.add_column(
        "task",
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        schema="care",
    )
    op.add_column(
        "task",
        sa.Column("outcome_note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        schema="care",
    )


def downgrade() -> None:
    op.drop_column("task", "outcome_note", schema="care")
    op.drop_column("task", "outcome", schema="care")
    op.drop_column("task", "channel", schema="care")
    op.drop_column("task", "completed_by", schema="care")
    op.drop_column("task", "completed_at", schema="care")
    op.drop_column("campaign", "urgent", schema="care")
