"""idempotency keys of the create routes

Revision ID: c6e08b2d9a14
Revises: 0405b1bfbd3d
Created: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from migrations import idempotency_v1

revision: str = "c6e08b2d9a14"
down_revision: str | None = "0405b1bfbd3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_v1.create("complaint")


def downgrade() -> None:
    idempotency_v1.drop("complaint")
