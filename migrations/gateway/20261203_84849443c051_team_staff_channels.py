"""team staff channels (WeCom and DingTalk group robots) and their queued notices

Revision ID: 84849443c051
Revises: b7e4d1c09a3f
Created: 2026-12-03 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "84849443c051"
down_revision: str | None = "b7e4d1c09a3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "team_channel",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", _enum("wecom", "dingtalk", name="kind"), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_channel")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_team_channel_team_id"), "team_channel", ["team_id"], unique=False, schema="gateway"
    )
    op.create_table(
        "channel_message",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind", _enum("warning", "sla_breached", "escalated", name="kind"), nullable=False
        ),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", _enum("pending", "sent", "dead", name="status"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["gateway.team_channel.id"],
            name=op.f("fk_channel_message_channel_id_team_channel"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_message")),
        sa.UniqueConstraint(
            "channel_id", "event_id", name=op.f("uq_channel_message_channel_id_event_id")
        ),
        schema="gateway",
    )
    op.create_index(
        "ix_channel_message_due",
        "channel_message",
        ["next_attempt_at"],
        unique=False,
        schema="gateway",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_channel_message_attempted_at",
        "channel_message",
        ["attempted_at"],
        unique=False,
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("channel_message", schema="gateway")
    op.drop_index(op.f("ix_team_channel_team_id"), table_name="team_channel", schema="gateway")
    op.drop_table("team_channel", schema="gateway")
