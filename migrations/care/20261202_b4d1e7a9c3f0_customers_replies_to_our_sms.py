"""customers' replies to our SMS (uplinks): opt-out by reply

Revision ID: b4d1e7a9c3f0
Revises: a41c7e9b3f58
Created: 2026-12-02 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b4d1e7a9c3f0"
down_revision: str | None = "a41c7e9b3f58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_reply",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("provider_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("msisdn", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("opt_out_keyword", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("dest_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("sign_name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_reply")),
        sa.UniqueConstraint(
            "provider", "provider_ref", name=op.f("uq_sms_reply_provider_provider_ref")
        ),
        schema="care",
    )
    op.create_index(
        "ix_sms_reply_pending_opt_out",
        "sms_reply",
        ["msisdn"],
        schema="care",
        postgresql_where="opt_out_keyword IS NOT NULL AND settled_at IS NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_sms_reply_pending_opt_out", table_name="sms_reply", schema="care")
    op.drop_table("sms_reply", schema="care")
