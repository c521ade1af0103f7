"""Tables of the care service (schema ``care``).

``recipient`` is the source of truth for dispatch: one row per (campaign, customer) with
its state, its idempotency key (written when the audience is materialised, long before any
provider call) and the claim lease of the worker sending it. Redis only carries nudges.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.kit import clock
from services.kit.audit import change_audit_table
from services.kit.db import enum_column
from services.kit.events import event_tables
from services.kit.idempotency import idempotency_table

SCHEMA = "care"


class CampaignKind(StrEnum):
    manual = "manual"
    auto = "auto"
    alert = "alert"


class Category(StrEnum):
    """What a message is; the frequency cap may exempt some categories."""

    marketing = "marketing"
    care = "care"
    greeting = "greeting"
    alert = "alert"


class CampaignStatus(StrEnum):
    draft = "draft"
    preview = "preview"
    approved = "approved"
    dispatching = "dispatching"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class RecipientState(StrEnum):
    queued = "queued"
    held = "held"  # waiting for quiet hours to end; sent when due_at passes
    sending = "sending"  # claimed by a worker under a lease
    sent = "sent"
    delivered = "delivered"
    failed = "failed"
    suppressed = "suppressed"
    control = "control"  # held out on purpose, to measure uplift
    cancelled = "cancelled"


class RuleKind(StrEnum):
    birthday = "birthday"
    personal_anniversary = "personal_anniversary"
    network_anniversary = "network_anniversary"
    holiday = "holiday"
    low_balance = "low_balance"
    vip_welcome = "vip_welcome"
    level_a_call = "level_a_call"
    level_b_sms = "level_b_sms"


class TaskKind(StrEnum):
    first_contact = "first_contact"
    monthly_call = "monthly_call"


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"  # the customer left before the task was done


def _at(nullable: bool = False, **kwargs: Any) -> Any:
    return Field(
        default_factory=clock.now if not nullable else None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, **kwargs),
    )


def _json(default: Any = list) -> Any:
    return Field(default_factory=default, sa_column=Column(JSONB, nullable=False))


class Customer(SQLModel, table=True):
    """Read model of profile's customers, fed by profile events (newest version wins)."""

    __tablename__ = "customer"
    __table_args__ = {"schema": SCHEMA}

    msisdn: str = Field(primary_key=True, max_length=11)
    version: int
    name: str = Field(max_length=50)
    gender: str = Field(max_length=10)
    honorific: str = Field(default="", max_length=10)
    birthday: date | None = None
    region: str = Field(max_length=50, index=True)
    city: str = Field(max_length=50)
    time_zone: str = Field(max_length=50)
    join_date: date
    status: str = Field(max_length=20)
    tier: str = Field(max_length=20)
    service_level: str = Field(max_length=2)
    lifecycle: str = Field(max_length=20)
    manager_id: str | None = Field(default=None, max_length=32, index=True)
    manager_name: str | None = Field(default=None, max_length=50)
    team_id: str | None = Field(default=None, max_length=32)
    balance: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    sms_opt_out: bool = False
    do_not_disturb: bool = False
    taboos: list[str] = _json()
    tags: list[str] = _json()
    interests: list[str] = _json()
    important_dates: list[dict[str, str]] = _json()
    custom: dict[str, Any] = _json(dict)
    updated_at: datetime = _at()


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    kind: CampaignKind = Field(sa_column=enum_column(CampaignKind, "kind"))
    category: Category = Field(sa_column=enum_column(Category, "category"))
    template: str = Field(sa_column=Column(Text, nullable=False))
    template_code: str | None = Field(default=None, max_length=50)
    taboo_tags: list[str] = _json()
    occasion: str | None = Field(default=None, max_length=100)
    plan_key: str | None = Field(default=None, max_length=150, unique=True)
    """Set on automatic campaigns: (rule, day), so planning a day twice creates nothing."""
    audience: dict[str, Any] = _json(dict)
    send_at: datetime | None = _at(nullable=True)
    local_time: bool = False
    urgent: bool = False
    """Alerts only: sent at once, even in quiet hours (a typhoon warning cannot wait)."""
    control_percent: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(5, 2), nullable=False)
    )
    status: CampaignStatus = Field(sa_column=enum_column(CampaignStatus, "status", index=True))
    pause_reason: str | None = None
    created_by: str = Field(max_length=64)
    # The team a manager's or supervisor's campaign belongs to: it reaches only that team's
    # customers and only that team's staff see or change it. None: company-wide (automatic
    # care, alerts, an operator's campaign).
    team_id: str | None = Field(default=None, max_length=32)
    approved_by: str | None = Field(default=None, max_length=64)
    approved_at: datetime | None = _at(nullable=True)
    heartbeat_at: datetime | None = _at(nullable=True)
    completed_at: datetime | None = _at(nullable=True)
    created_at: datetime = _at()
    updated_at: datetime = _at()


class ListMember(SQLModel, table=True):
    """An uploaded audience list: the numbers as given, before any rule applies."""

    __tablename__ = "list_member"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.campaign.id", ondelete="CASCADE"), primary_key=True
        )
    )
    msisdn: str = Field(primary_key=True, max_length=20)


class Recipient(SQLModel, table=True):
    __tablename__ = "recipient"
    __table_args__ = (
        UniqueConstraint("campaign_id", "msisdn"),
        Index("ix_recipient_claim", "campaign_id", "state", "due_at"),
        Index("ix_recipient_cap", "msisdn", "sent_at"),
        # Receipts that carry only the provider's message id; the id leads because the
        # lookup names only it (PostgreSQL 15 has no skip scan over a leading provider).
        Index(
            "ix_recipient_provider_message",
            "provider_message_id",
            "provider",
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
        Index(
            "ix_recipient_lease",
            "lease_until",
            postgresql_where=text("state = 'sending'"),
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    campaign_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.campaign.id", ondelete="CASCADE"), nullable=False
        )
    )
    msisdn: str = Field(max_length=20)
    idempotency_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    state: RecipientState = Field(sa_column=enum_column(RecipientState, "state"))
    due_at: datetime = _at()
    attempts: int = 0
    claim_token: uuid.UUID | None = None
    lease_until: datetime | None = _at(nullable=True)
    text: str | None = Field(default=None, sa_column=Column(Text))
    reason: str | None = Field(default=None, max_length=40)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    provider: str | None = Field(default=None, max_length=20)
    provider_message_id: str | None = Field(default=None, max_length=64)
    manager_id: str | None = Field(default=None, max_length=32)
    team_id: str | None = Field(default=None, max_length=32)
    tier: str | None = Field(default=None, max_length=20)
    counts_toward_cap: bool = True
    sent_at: datetime | None = _at(nullable=True)
    delivered_at: datetime | None = _at(nullable=True)
    updated_at: datetime = _at()


class Greeting(SQLModel, table=True):
    """One row per greeting a customer got for an occasion: never the same one twice."""

    __tablename__ = "greeting"
    __table_args__ = {"schema": SCHEMA}

    msisdn: str = Field(primary_key=True, max_length=20)
    occasion: str = Field(primary_key=True, max_length=100)
    recipient_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime = _at()


class Rule(SQLModel, table=True):
    """An automatic-care rule: when it fires, whom it addresses and what it says."""

    __tablename__ = "rule"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: RuleKind = Field(sa_column=enum_column(RuleKind, "kind"))
    name: str = Field(max_length=200)
    category: Category = Field(sa_column=enum_column(Category, "category"))
    template: str = Field(sa_column=Column(Text, nullable=False))
    taboo_tags: list[str] = _json()
    params: dict[str, Any] = _json(dict)
    active: bool = True
    created_at: datetime = _at()


class Task(SQLModel, table=True):
    """A manager's care task (first contact with a new VIP, monthly call to A customers)."""

    __tablename__ = "task"
    __table_args__ = (UniqueConstraint("msisdn", "kind", "period"), {"schema": SCHEMA})

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    msisdn: str = Field(max_length=20)
    manager_id: str | None = Field(default=None, max_length=32, index=True)
    kind: TaskKind = Field(sa_column=enum_column(TaskKind, "kind"))
    period: str = Field(max_length=20)  # what makes it unique: "2026-11", or the tier date
    due_on: date
    status: TaskStatus = Field(default=TaskStatus.open, sa_column=enum_column(TaskStatus, "status"))
    note: str | None = None
    completed_at: datetime | None = _at(nullable=True)
    completed_by: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=20)
    outcome: str | None = Field(default=None, max_length=20)
    outcome_note: str | None = Field(default=None, max_length=500)
    created_at: datetime = _at()


class SmsReply(SQLModel, table=True):
    """A customer's reply to our SMS (an uplink, 上行短信), once per provider id.

    An opt-out reply (``opt_out_keyword`` set) turns away every later send to the number at
    once, without waiting for profile: the dispatcher and the preview read it as an SMS
    opt-out while ``settled_at`` is NULL. It is settled when the customer copy first shows
    profile's opt-out (or already showed it when the reply came); from then on the archive's
    flag decides, so an opt-in the customer later gives profile is honoured."""

    __tablename__ = "sms_reply"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        Index(
            "ix_sms_reply_pending_opt_out",
            "msisdn",
            postgresql_where=text("opt_out_keyword IS NOT NULL AND settled_at IS NULL"),
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    provider: str = Field(max_length=20)
    provider_ref: str = Field(max_length=64)
    """The provider's id of the uplink (Aliyun's sequence_id): a re-push is the same reply."""
    msisdn: str = Field(max_length=20)
    content: str = Field(sa_column=Column(Text, nullable=False))
    opt_out_keyword: str | None = Field(default=None, max_length=10)
    """The keyword the reply consists of (normalised), or None: not an opt-out."""
    dest_code: str | None = Field(default=None, max_length=32)
    sign_name: str | None = Field(default=None, max_length=50)
    sent_at: datetime | None = _at(nullable=True)
    """When the operator handed it to the provider, as the provider says."""
    received_at: datetime = _at()
    settled_at: datetime | None = _at(nullable=True)


events = event_tables(SCHEMA)
idempotency = idempotency_table(SCHEMA)  # Idempotency-Key answers of the create routes
change_audit = change_audit_table(SCHEMA)  # who changed what through the API
