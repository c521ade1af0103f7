"""customer tag and name search indexes (GIN jsonb_path_ops, pg_trgm)

Revision ID: 1585700f5831
Revises: 4e46af32dcd7
Created: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1585700f5831"
down_revision: str | None = "4e46af32dcd7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL (contrib; the embedded build has it). Installed in
    # public, which every service's search path reaches; kept on downgrade (another
    # schema may use it, and it holds no data).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.create_index(
        "ix_customer_tags",
        "customer",
        ["tags"],
        schema="profile",
        postgresql_using="gin",
        postgresql_ops={"tags": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_customer_name_trgm",
        "customer",
        ["name"],
        schema="profile",
        postgresql_using="gin",
        postgresql_ops={"name": "public.gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_customer_name_trgm", table_name="customer", schema="profile")
    op.drop_index("ix_customer_tags", table_name="customer", schema="profile")
