"""customer copy keeps profile's customer id

Revision ID: 4b1d7e2c9a60
Revises: 44fc4bb156ea
Created: 2026-12-02 14:00:00

Partners' reads go by profile's customer id, never by number. Rows copied before this
revision get it with the customer's next event, or at once from a rebuild of the copy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4b1d7e2c9a60"
down_revision: str | None = "44fc4bb156ea"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customer", sa.Column("customer_id", sa.BigInteger(), nullable=True), schema="warning"
    )
    op.create_unique_constraint(
        "uq_customer_customer_id", "customer", ["customer_id"], schema="warning"
    )


def downgrade() -> None:
    op.drop_constraint("uq_customer_customer_id", "customer", schema="warning", type_="unique")
    op.drop_column("customer", "customer_id", schema="warning")
