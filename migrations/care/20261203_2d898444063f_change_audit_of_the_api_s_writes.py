"""change audit of the API's writes

Revision ID: 2d898444063f
Revises: edd62fb09a09
Created: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

from migrations import change_audit_v1

revision: str = "2d898444063f"
down_revision: str | None = "edd62fb09a09"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    change_audit_v1.create("care")


def downgrade() -> None:
    change_audit_v1.drop("care")
