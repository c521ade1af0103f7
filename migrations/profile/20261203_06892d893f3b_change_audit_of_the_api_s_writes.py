"""change audit of the API's writes

Revision ID: 06892d893f3b
Revises: 9e2b4c6d8a10
Created: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

from migrations import change_audit_v1

revision: str = "06892d893f3b"
down_revision: str | None = "9e2b4c6d8a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    change_audit_v1.create("profile")


def downgrade() -> None:
    change_audit_v1.drop("profile")
