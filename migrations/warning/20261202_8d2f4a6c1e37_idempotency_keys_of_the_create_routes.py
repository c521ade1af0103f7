"""idempotency keys of the create routes

Revision ID: 8d2f4a6c1e37
Revises: 1c07329e77bc
Created: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from migrations import idempotency_v1

revision: str = "8d2f4a6c1e37"
down_revision: str | None = "1c07329e77bc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_v1.create("warning")


def downgrade() -> None:
    idempotency_v1.drop("warning")
