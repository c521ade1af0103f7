"""partial indexes of the open warning lists

Revision ID: 1c07329e77bc
Revises: 0e50d6a8dfd8
Created: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1c07329e77bc"
down_revision: str | None = "0e50d6a8dfd8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_warning_manager_open", table_name="warning", schema="warning")
    for name, columns in (
        ("ix_warning_manager_open", ["manager_id", "risk_score"]),
        ("ix_warning_team_open", ["team_id", "risk_score"]),
        ("ix_warning_open_risk", ["risk_score"]),
    ):
        op.create_index(
            name,
            "warning",
            columns,
            schema="warning",
            postgresql_where="status <> 'resolved'",
        )


def downgrade() -> None:
    for name in ("ix_warning_open_risk", "ix_warning_team_open", "ix_warning_manager_open"):
        op.drop_index(name, table_name="warning", schema="warning")
    op.create_index(
        "ix_warning_manager_open", "warning", ["manager_id", "risk_score"], schema="warning"
    )
