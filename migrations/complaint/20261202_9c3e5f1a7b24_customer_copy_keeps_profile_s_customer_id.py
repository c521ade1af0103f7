"""customer copy keeps profile's customer id

Revision ID: 9c3e5f1a7b24
Revises: 8b671e3b6d15
Created: 2026-12-02 14:00:00

Partners' reads go by profile's customer id, never by number. Rows copied before this
revision get it with the customer's next event, or at once from a rebuild of the copy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c3e5f1a7b24"
down_revision: str | None = "8b671e3b6d15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customer", sa.Column("customer_id", sa.BigInteger(), nullable=True), schema="complaint"
    )
    op.create_unique_constraint(
        "uq_customer_customer_id", "customer", ["customer_id"], schema="complaint"
    )


def downgrade() -> None:
    op.drop_constraint("uq_customer_customer_id", "customer", schema="complaint", type_="unique")
    op.drop_column("customer", "customer_id", schema="complaint")
