"""Version 5 of the event tables: an operator can discard a dead delivery (status
``discarded``, with who, when and why), after which pruning may take its event like a
delivered one. Frozen, like versions 1 to 4.
"""

import sqlalchemy as sa
from alembic import op

_OLD = "status IN ('pending', 'delivered', 'dead')"
_NEW = "status IN ('pending', 'delivered', 'dead', 'discarded')"


def upgrade(schema: str) -> None:
    op.drop_constraint(op.f("ck_delivery_status"), "delivery", schema=schema, type_="check")
    op.create_check_constraint(op.f("ck_delivery_status"), "delivery", _NEW, schema=schema)
    op.add_column(
        "delivery",
        sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.add_column(
        "delivery", sa.Column("discarded_by", sa.String(length=64), nullable=True), schema=schema
    )
    op.add_column("delivery", sa.Column("discard_reason", sa.Text(), nullable=True), schema=schema)


def downgrade(schema: str) -> None:
    op.execute(sa.text(f"UPDATE {schema}.delivery SET status = 'dead' WHERE status = 'discarded'"))
    op.drop_column("delivery", "discard_reason", schema=schema)
    op.drop_column("delivery", "discarded_by", schema=schema)
    op.drop_column("delivery", "discarded_at", schema=schema)
    op.drop_constraint(op.f("ck_delivery_status"), "delivery", schema=schema, type_="check")
    op.create_check_constraint(op.f("ck_delivery_status"), "delivery", _OLD, schema=schema)
