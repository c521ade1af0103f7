"""tasks of a churned customer are cancelled

Revision ID: de17337b8a21
Revises: efdf0cd4e621
Created: 2026-11-23 18:45:50.262969
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "de17337b8a21"
down_revision: str | None = "efdf0cd4e621"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_task_status"), "task", schema="care", type_="check")
    op.alter_column(
        "task",
        "status",
        existing_type=sa.VARCHAR(length=4),
        type_=sa.VARCHAR(length=9),
        existing_nullable=False,
        schema="care",
    )
    op.create_check_constraint(
        op.f("ck_task_status"), "task", "status IN ('open', 'done', 'cancelled')", schema="care"
    )


def downgrade() -> None:
    op.execute("UPDATE care.task SET status = 'done' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_task_status"), "task", schema="care", type_="check")
    op.alter_column(
        "task",
        "status",
        existing_type=sa.VARCHAR(length=9),
        type_=sa.VARCHAR(length=4),
        existing_nullable=False,
        schema="care",
    )
    op.create_check_constraint(
        op.f("ck_task_status"), "task", "status IN ('open', 'done')", schema="care"
    )
