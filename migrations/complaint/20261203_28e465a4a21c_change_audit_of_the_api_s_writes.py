"""change audit of the API's writes

Revision ID: 28e465a4a21c
Revises: 6a8c0e2f4b71
Created: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

from migrations import change_audit_v1

revision: str = "28e465a4a21c"
down_revision: str | None = "6a8c0e2f4b71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    change_audit_v1.create("complaint")


def downgrade() -> None:
    change_audit_v1.drop("complaint")
