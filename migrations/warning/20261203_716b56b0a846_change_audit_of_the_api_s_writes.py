"""change audit of the API's writes

Revision ID: 716b56b0a846
Revises: 4b1d7e2c9a60
Created: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

from migrations import change_audit_v1

revision: str = "716b56b0a846"
down_revision: str | None = "4b1d7e2c9a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    change_audit_v1.create("warning")


def downgrade() -> None:
    change_audit_v1.drop("warning")
