"""recipient lookup by the provider's message id (delivery receipts)

Revision ID: ce152efd305e
Revises: 5c1e0a7b9d21
Created: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ce152efd305e"
down_revision: str | None = "5c1e0a7b9d21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_recipient_provider_message",
        "recipient",
        ["provider_message_id", "provider"],
        schema="care",
        postgresql_where="provider_message_id IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_recipient_provider_message", table_name="recipient", schema="care")
