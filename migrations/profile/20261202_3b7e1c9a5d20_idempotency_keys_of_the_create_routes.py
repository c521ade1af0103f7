"""idempotency keys of the create routes

Revision ID: 3b7e1c9a5d20
Revises: 1585700f5831
Created: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from migrations import idempotency_v1

revision: str = "3b7e1c9a5d20"
down_revision: str | None = "1585700f5831"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_v1.create("profile")


def downgrade() -> None:
    idempotency_v1.drop("profile")
