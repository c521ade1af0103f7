"""Tables of the profile service (schema ``profile``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from services.kit import clock
from services.kit.audit import change_audit_table
from services.kit.db import enum_column
from services.kit.events import event_tables
from services.kit.idempotency import idempotency_table
from services.profile.contract import (
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    CustomerStatus,
    Lifecycle,
    ServiceLevel,
    Tier,
)

__all__ = [
    "ContactChannel",
    "ContactDirection",
    "ContactOutcome",
    "CustomerStatus",
    "Lifecycle",
    "ServiceLevel",
    "Tier",
]

SCHEMA = "profile"


class Gender(StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class ValueQuadrant(StrEnum):
    """The sales-profit matrix of the seeds (金牛 / 明星 / 问题 / 瘦狗)."""

    star = "star"
    cash_cow = "cash_cow"
    question = "question"
    dog = "dog"


def _created() -> Any:
    return Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSONB, nullable=False))


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    region: str = Field(max_length=50)
    # The supervisor's user id (the ``sub`` of their token) and display name.
    supervisor_id: str | None = Field(default=None, max_length=32)
    supervisor_name: str = Field(max_length=50)
    created_at: datetime = _created()


class Manager(SQLModel, table=True):
    __tablename__ = "manager"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=50)
    phone: str = Field(max_length=20)
    team_id: str = Field(foreign_key=f"{SCHEMA}.team.id", index=True, max_length=32)
    active: bool = True
    left_on: date | None = None
    created_at: datetime = _created()


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (
        # ``?tag=``: tags @> '["x"]' (jsonb_path_ops answers @> only, and is the smaller).
        Index(
            "ix_customer_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        ),
        # ``?q=``: name ILIKE '%x%' (pg_trgm; a term of 3+ characters uses it).
        Index(
            "ix_customer_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "public.gin_trgm_ops"},
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    msisdn: str = Field(max_length=11, unique=True)
    name: str = Field(max_length=50)
    gender: Gender = Field(sa_column=enum_column(Gender, "gender"))
    birthday: date | None = None
    region: str = Field(max_length=50)
    city: str = Field(max_length=50)
    time_zone: str = Field(default="Asia/Shanghai", max_length=50)
    join_date: date
    plan_name: str = Field(max_length=100)
    plan_fee: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    contract_name: str | None = Field(default=None, max_length=100)
    contract_end: date | None = None
    balance: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    status: CustomerStatus = Field(sa_column=enum_column(CustomerStatus, "status"))
    churned_on: date | None = None
    churn_reason: str | None = Field(default=None, max_length=200)
    tier: Tier = Field(sa_column=enum_column(Tier, "tier"))
    service_level: ServiceLevel = Field(sa_column=enum_column(ServiceLevel, "service_level"))
    lifecycle: Lifecycle = Field(sa_column=enum_column(Lifecycle, "lifecycle"))
    # Value classification, written by the monthly recompute only.
    rfm_recency: int | None = Field(default=None, sa_column=Column(SmallInteger))
    rfm_frequency: int | None = Field(default=None, sa_column=Column(SmallInteger))
    rfm_monetary: int | None = Field(default=None, sa_column=Column(SmallInteger))
    avg_spend_3m: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    value_quadrant: ValueQuadrant | None = Field(
        default=None, sa_column=enum_column(ValueQuadrant, "value_quadrant", nullable=True)
    )
    value_computed_on: date | None = None
    manager_id: str | None = Field(
        default=None, foreign_key=f"{SCHEMA}.manager.id", index=True, max_length=32
    )
    interests: list[str] = _json_list()
    # Operator labels (商旅客户, 高端家庭...): campaign audiences are chosen by them.
    tags: list[str] = _json_list()
    preferences: list[str] = _json_list()
    taboos: list[str] = _json_list()
    family_notes: str | None = Field(default=None, sa_column=Column(Text))
    important_dates: list[dict[str, str]] = _json_list()
    contact_channels: list[str] = _json_list()
    preferred_hours_start: int = 9
    preferred_hours_end: int = 21
    do_not_disturb: bool = False
    sms_opt_out: bool = False
    sms_opt_out_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    version: int = 1
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ManagerAssignment(SQLModel, table=True):
    """Who managed a customer and when; the current one has ``ended_at`` NULL."""

    __tablename__ = "manager_assignment"
    __table_args__ = (
        Index("ix_manager_assignment_customer", "customer_id", "started_at"),
        Index(
            "uq_manager_assignment_current",
            "customer_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    customer_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.customer.id", ondelete="CASCADE"), nullable=False
        )
    )
    manager_id: str = Field(foreign_key=f"{SCHEMA}.manager.id", index=True, max_length=32)
    started_at: datetime = _created()
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    assigned_by: str = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=200)


class ContactLog(SQLModel, table=True):
    """Every call, visit, SMS, gift or IM exchange with a customer (维护记录)."""

    __tablename__ = "contact_log"
    __table_args__ = (
        Index("ix_contact_log_customer_at", "customer_id", "at"),
        Index("ix_contact_log_at", "at"),
        # The same source event recorded twice is one entry.
        UniqueConstraint("source", "source_ref"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    customer_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.customer.id", ondelete="CASCADE"), nullable=False
        )
    )
    channel: ContactChannel = Field(sa_column=enum_column(ContactChannel, "channel"))
    direction: ContactDirection = Field(sa_column=enum_column(ContactDirection, "direction"))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    by: str = Field(max_length=64)
    outcome: ContactOutcome = Field(sa_column=enum_column(ContactOutcome, "outcome"))
    note: str | None = Field(default=None, sa_column=Column(Text))
    source: str = Field(max_length=32)
    source_ref: str | None = Field(default=None, max_length=100)
    created_at: datetime = _created()


class BillingMonth(SQLModel, table=True):
    """A customer's spend in one month (``month`` is its first day), from the billing feed."""

    __tablename__ = "billing_month"
    __table_args__ = (Index("ix_billing_month_month", "month"), {"schema": SCHEMA})

    customer_id: int = Field(
        sa_column=Column(
            BigInteger,
            ForeignKey(f"{SCHEMA}.customer.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    month: date = Field(primary_key=True)
    spend: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))


class TierChange(SQLModel, table=True):
    """One change of tier or value quadrant made by the monthly recompute, with its reason."""

    __tablename__ = "tier_change"
    __table_args__ = (
        Index("ix_tier_change_customer", "customer_id", "computed_at"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    customer_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.customer.id", ondelete="CASCADE"), nullable=False
        )
    )
    as_of: date  # first day of the month the recompute ran for
    computed_at: datetime = _created()
    old_tier: Tier = Field(sa_column=enum_column(Tier, "old_tier"))
    new_tier: Tier = Field(sa_column=enum_column(Tier, "new_tier"))
    old_quadrant: ValueQuadrant | None = Field(
        default=None, sa_column=enum_column(ValueQuadrant, "old_quadrant", nullable=True)
    )
    new_quadrant: ValueQuadrant = Field(sa_column=enum_column(ValueQuadrant, "new_quadrant"))
    avg_spend: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    rfm_recency: int = Field(sa_column=Column(SmallInteger, nullable=False))
    rfm_frequency: int = Field(sa_column=Column(SmallInteger, nullable=False))
    rfm_monetary: int = Field(sa_column=Column(SmallInteger, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))


class Snapshot(SQLModel, table=True):
    """One 拍照 of the VIP base: taken once per Beijing business date, never retaken."""

    __tablename__ = "snapshot"
    __table_args__ = {"schema": SCHEMA}

    day: date = Field(primary_key=True)
    taken_at: datetime = _created()
    taken_by: str = Field(max_length=64)
    customers: int


class SnapshotCustomer(SQLModel, table=True):
    """A VIP customer on file on the snapshot's day, as the archive stood when it was taken."""

    __tablename__ = "snapshot_customer"
    __table_args__ = {"schema": SCHEMA}

    day: date = Field(
        sa_column=Column(
            Date, ForeignKey(f"{SCHEMA}.snapshot.day", ondelete="CASCADE"), primary_key=True
        )
    )
    # No foreign key: a snapshot is history and outlives the archive row.
    customer_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    msisdn: str = Field(max_length=11)
    tier: Tier = Field(sa_column=enum_column(Tier, "tier"))
    team_id: str | None = Field(default=None, max_length=32)
    manager_id: str | None = Field(default=None, max_length=32)
    status: CustomerStatus = Field(sa_column=enum_column(CustomerStatus, "status"))


class ReadAudit(SQLModel, table=True):
    """One customer's personal fields served unmasked to one caller in one request.

    Append-only (a trigger refuses UPDATE and DELETE); no foreign key, so the record
    outlives the archive row."""

    __tablename__ = "read_audit"
    __table_args__ = (
        Index("ix_read_audit_at", "at"),
        Index("ix_read_audit_msisdn_id", "msisdn", "id"),
        Index("ix_read_audit_user_id_id", "user_id", "id"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    request_id: str | None = Field(default=None, max_length=64)
    user_id: str = Field(max_length=64)
    role: str = Field(max_length=16)
    caller: str | None = Field(default=None, max_length=16)
    action: str = Field(max_length=64)
    customer_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    msisdn: str = Field(max_length=11)
    fields: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))


class ErasureStatus(StrEnum):
    pending = "pending"  # requested, waiting for the second pair of eyes
    erasing = "erasing"  # approved: profile's archive is anonymised, the others confirming
    completed = "completed"  # every service that keeps a copy confirmed


class Erasure(SQLModel, table=True):
    """One customer's erasure (PIPL): who asked, who approved, what each service confirmed.

    Kept for good as the record that it happened, without the personal values: the
    customer by id, and after approval the stand-in their number became."""

    __tablename__ = "erasure"
    __table_args__ = (
        # One erasure at a time per customer; a completed one may be followed by another
        # (a customer who came back and asked again).
        Index(
            "uq_erasure_customer_open",
            "customer_id",
            unique=True,
            postgresql_where=text("status <> 'completed'"),
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    customer_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    stand_in: str | None = Field(default=None, max_length=11)
    status: ErasureStatus = Field(sa_column=enum_column(ErasureStatus, "status"))
    reason: str = Field(max_length=500)
    requested_by: str = Field(max_length=64)
    requested_at: datetime = _created()
    approved_by: str | None = Field(default=None, max_length=64)
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # {service: {"at": ISO instant, "counts": {kind: rows}}}, profile's own included.
    receipts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


events = event_tables(SCHEMA)
idempotency = idempotency_table(SCHEMA)  # Idempotency-Key answers of the create routes
change_audit = change_audit_table(SCHEMA)  # who changed what through the API
