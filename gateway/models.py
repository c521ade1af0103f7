"""The gateway's tables (schema ``gateway``): partners' API keys, the operations an app
build registered for the safelist, and the teams' staff channels (WeCom and DingTalk group
robots) with the notices queued for them.

A key is shown once, when made; only its SHA-256 is kept (keys are 32 random bytes, so a
plain hash is as strong as a slow one and costs nothing per request)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from services.kit import clock
from services.kit.db import enum_column
from services.kit.events.tables import event_tables

SCHEMA = "gateway"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=16)
    """The key's public part (``kw_<id>_<secret>``): names it in lists and logs."""
    partner_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    secret_sha256: str = Field(max_length=64)
    scopes: list[str] = Field(sa_column=Column(ARRAY(String(40)), nullable=False))
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    rate_per_minute: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    """The key's own rate limit (cost per minute); ``None``: the partners' default."""


class Operation(SQLModel, table=True):
    """A registered (safelisted) operation: the text an app build sends, by its SHA-256."""

    __tablename__ = "operation"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=64)
    """SHA-256 of ``body`` in lowercase hex, as APQ's ``sha256Hash``."""
    name: str | None = Field(default=None, max_length=200)
    type: str = Field(max_length=12)
    """query, mutation or subscription."""
    body: str = Field(sa_column=Column(Text, nullable=False))
    registered_by: str = Field(max_length=64)
    registered_at: datetime = Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ChannelKind(StrEnum):
    wecom = "wecom"
    """企业微信 group robot: the robot's key is in its webhook URL."""
    dingtalk = "dingtalk"
    """钉钉 group robot: the access token in its URL, optionally a 加签 secret."""


class NoticeKind(StrEnum):
    warning = "warning"
    sla_breached = "sla_breached"
    escalated = "escalated"


class MessageStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    dead = "dead"


def _at(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class TeamChannel(SQLModel, table=True):
    """A team's staff channel: a group robot that gets the team's notices.

    The webhook URL (its key or access token) and the secret are operational config, like a
    partner webhook's secret: stored as they are (sending needs them), never shown in full
    or logged (``gateway.channels.robots.masked_url``)."""

    __tablename__ = "team_channel"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    team_id: str = Field(max_length=32, index=True)
    """Profile's team id (``T001``)."""
    kind: ChannelKind = Field(sa_column=enum_column(ChannelKind, "kind"))
    name: str = Field(max_length=100)
    webhook_url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str | None = Field(default=None, max_length=200)
    active: bool = True
    created_by: str = Field(max_length=64)
    created_at: datetime = _at()


class ChannelMessage(SQLModel, table=True):
    """One notice for one channel: queued in the transaction that took the event, sent by
    whichever gateway process claims it (``gateway.channels.sender``)."""

    __tablename__ = "channel_message"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_id"),
        Index(
            "ix_channel_message_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # The per-team rate limit counts the attempts of the last minute.
        Index("ix_channel_message_attempted_at", "attempted_at"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    channel_id: int = Field(
        sa_column=Column(
            BigInteger,
            ForeignKey(f"{SCHEMA}.team_channel.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    event_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    kind: NoticeKind = Field(sa_column=enum_column(NoticeKind, "kind"))
    body: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    """The robot's request body, without the signature (DingTalk's goes in the URL)."""
    status: MessageStatus = Field(sa_column=enum_column(MessageStatus, "status"))
    attempts: int = 0
    next_attempt_at: datetime = _at()
    """When it is due; while a sender holds it, when its claim runs out."""
    claim: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    attempted_at: datetime | None = _at(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _at()
    sent_at: datetime | None = _at(nullable=True)


# The events the gateway subscribes to (live updates, gateway/live/) land in its inbox.
events = event_tables(SCHEMA)
