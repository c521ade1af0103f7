"""Version 3 of the event tables: a relay claims deliveries with a lease (``claim`` token,
``leased_until``) in a short transaction, delivers outside any transaction and records the
results only on rows still held under its claim. Frozen, like versions 1 and 2.
"""

import sqlalchemy as sa
from alembic import op


def upgrade(schema: str) -> None:
    op.add_column("delivery", sa.Column("claim", sa.Uuid(), nullable=True), schema=schema)
    op.add_column(
        "delivery",
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_column("delivery", "leased_until", schema=schema)
    op.drop_column("delivery", "claim", schema=schema)
