"""erasures of personal data; the read audit lets an erasure replace the number

Revision ID: 9e2b4c6d8a10
Revises: 144c04cbb321
Created: 2026-12-02 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9e2b4c6d8a10"
down_revision: str | None = "144c04cbb321"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION profile.refuse_read_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'profile.read_audit is append-only';
END $$
"""

# An erasure (keepwell.erasure set on in its transaction) may replace the number a row
# holds by the customer's stand-in; who read what, when and why stays as it was.
ERASABLE = """
CREATE OR REPLACE FUNCTION profile.refuse_read_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('keepwell.erasure', true) = 'on'
     AND ROW(NEW.id, NEW.at, NEW.request_id, NEW.user_id, NEW.role, NEW.caller, NEW.action,
             NEW.customer_id, NEW.fields)
         IS NOT DISTINCT FROM
         ROW(OLD.id, OLD.at, OLD.request_id, OLD.user_id, OLD.role, OLD.caller, OLD.action,
             OLD.customer_id, OLD.fields) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'profile.read_audit is append-only';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "erasure",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("stand_in", sqlmodel.sql.sqltypes.AutoString(length=11), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "erasing",
                "completed",
                name="status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure")),
        schema="profile",
    )
    op.create_index(
        "uq_erasure_customer_open",
        "erasure",
        ["customer_id"],
        unique=True,
        schema="profile",
        postgresql_where=sa.text("status <> 'completed'"),
    )
    op.execute(ERASABLE)


def downgrade() -> None:
    op.execute(APPEND_ONLY)
    op.drop_index(
        "uq_erasure_customer_open",
        table_name="erasure",
        schema="profile",
        postgresql_where=sa.text("status <> 'completed'"),
    )
    op.drop_table("erasure", schema="profile")
