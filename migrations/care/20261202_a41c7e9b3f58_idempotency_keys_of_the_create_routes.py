"""idempotency keys of the create routes

Revision ID: a41c7e9b3f58
Revises: ce152efd305e
Created: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from migrations import idempotency_v1

revision: str = "a41c7e9b3f58"
down_revision: str | None = "ce152efd305e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_v1.create("care")


def downgrade() -> None:
    idempotency_v1.drop("care")
