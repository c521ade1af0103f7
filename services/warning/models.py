"""Tables of the warning service (schema ``warning``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Identity, Index, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.kit import clock
from services.kit.audit import change_audit_table
from services.kit.db import enum_column
from services.kit.events import event_tables
from services.kit.idempotency import idempotency_table

SCHEMA = "warning"


class Signal(StrEnum):
    """The churn signals (离网预警): contract or bundle expiry, usage drop, multi-day zero calls,
    competitor hotline calls, competitor marketing, call forwarding, spend below plan, low
    balance and complaint."""

    contract_expiry = "contract_expiry"
    usage_drop = "usage_drop"
    zero_calls = "zero_calls"
    competitor_hotline = "competitor_hotline"
    competitor_marketing = "competitor_marketing"
    call_forwarding = "call_forwarding"
    spend_below_plan = "spend_below_plan"
    low_balance = "low_balance"
    complaint = "complaint"


class Status(StrEnum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Outcome(StrEnum):
    retained = "retained"
    churned = "churned"
    false_alarm = "false_alarm"


class RetentionAction(StrEnum):
    plan_change = "plan_change"
    bundle_renewal = "bundle_renewal"
    prepaid_gift = "prepaid_gift"
    device_offer = "device_offer"
    service_fix = "service_fix"


class ChurnReason(StrEnum):
    number = "number"
    service = "service"
    network_quality = "network_quality"
    tariff = "tariff"
    other = "other"


def _timestamp(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True)))
    return Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class DailyUsage(SQLModel, table=True):
    """One subscriber's usage on one day, as delivered by the operator's nightly feed.

    Detection reads one window of days for every subscriber, so ``day`` has its own index
    next to the (msisdn, day) key that serves one subscriber's history.
    """

    __tablename__ = "daily_usage"
    __table_args__ = (Index("ix_daily_usage_day", "day"), {"schema": SCHEMA})

    msisdn: str = Field(primary_key=True, max_length=11)
    day: date = Field(primary_key=True)
    outgoing_calls: int
    minutes: int
    data_mb: int
    spend: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    balance: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    competitor_hotline_calls: int = 0
    forwarded_to_other_network: int = 0
    other_network_call_share: float = 0.0
    # None when the feed does not know (not every region reports inbound marketing).
    competitor_marketing_contacts: int | None = None


class Customer(SQLModel, table=True):
    """What detection and assignment need of a profile customer; fed by profile events."""

    __tablename__ = "customer"
    __table_args__ = {"schema": SCHEMA}

    msisdn: str = Field(primary_key=True, max_length=11)
    version: int
    # Profile's id of the customer: the key partners' reads go by (they hold no number).
    customer_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    name: str = Field(max_length=50)
    status: str = Field(max_length=20)
    tier: str = Field(max_length=20)
    manager_id: str | None = Field(default=None, max_length=32, index=True)
    team_id: str | None = Field(default=None, max_length=32)
    plan_name: str = Field(max_length=100)
    plan_fee: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    contract_end: date | None = None
    updated_at: datetime = _timestamp()


class RuleSet(SQLModel, table=True):
    """One version of the detection rules. Edits make a new version; the highest is current,
    and every warning records the version that fired it."""

    __tablename__ = "rule_set"
    __table_args__ = {"schema": SCHEMA}

    version: int = Field(primary_key=True)
    rules: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    bands: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    note: str = Field(default="", max_length=500)
    created_by: str = Field(max_length=64)
    created_at: datetime = _timestamp()


class Warning(SQLModel, table=True):
    """One churn warning: a signal that fired for a subscriber, and its follow-up."""

    __tablename__ = "warning"
    __table_args__ = (
        # At most one open (or in-progress) warning per subscriber and signal.
        Index(
            "uq_warning_open_signal",
            "msisdn",
            "signal",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
        ),
        # The open lists (GET /warnings without status), highest risk first: a manager's,
        # a team's, everyone's. The predicate is the one list_warnings writes literally.
        Index(
            "ix_warning_manager_open",
            "manager_id",
            "risk_score",
            postgresql_where=text("status <> 'resolved'"),
        ),
        Index(
            "ix_warning_team_open",
            "team_id",
            "risk_score",
            postgresql_where=text("status <> 'resolved'"),
        ),
        Index("ix_warning_open_risk", "risk_score", postgresql_where=text("status <> 'resolved'")),
        Index("ix_warning_team_id", "team_id"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    msisdn: str = Field(max_length=11)
    signal: Signal = Field(sa_column=enum_column(Signal, "signal"))
    status: Status = Field(sa_column=enum_column(Status, "status"))
    severity: Severity = Field(sa_column=enum_column(Severity, "severity"))
    risk_score: int
    weight: int
    rule_version: int
    evidence: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    first_detected_on: date
    last_detected_on: date
    due_on: date
    manager_id: str | None = Field(default=None, max_length=32)
    team_id: str | None = Field(default=None, max_length=32)
    raised_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    contacted_at: datetime | None = _timestamp(nullable=True)
    resolved_at: datetime | None = _timestamp(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=64)
    outcome: Outcome | None = Field(
        default=None, sa_column=enum_column(Outcome, "outcome", nullable=True)
    )
    retention_action: RetentionAction | None = Field(
        default=None, sa_column=enum_column(RetentionAction, "retention_action", nullable=True)
    )
    churn_reason: ChurnReason | None = Field(
        default=None, sa_column=enum_column(ChurnReason, "churn_reason", nullable=True)
    )
    resolution_note: str = Field(default="", max_length=1000)


class Contact(SQLModel, table=True):
    """A follow-up contact a manager recorded on a warning."""

    __tablename__ = "contact"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    warning_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.warning.id"), nullable=False, index=True)
    )
    msisdn: str = Field(max_length=11)
    channel: str = Field(max_length=20)
    direction: str = Field(max_length=10)
    at: datetime = _timestamp()
    by: str = Field(max_length=64)
    outcome: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=1000)


events = event_tables(SCHEMA)
idempotency = idempotency_table(SCHEMA)  # Idempotency-Key answers of the create routes
change_audit = change_audit_table(SCHEMA)  # who changed what through the API
