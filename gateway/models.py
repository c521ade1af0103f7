"""The gateway's tables (schema ``gateway``): partners' API keys, and the operations an app
build registered for the safelist.

A key is shown once, when made; only its SHA-256 is kept (keys are 32 random bytes, so a
plain hash is as strong as a slow one and costs nothing per request)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from services.kit import clock

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
