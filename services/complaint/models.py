"""Tables of the complaint service (schema ``complaint``)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.kit import clock
from services.kit.audit import change_audit_table
from services.kit.db import enum_column
from services.kit.events import event_tables
from services.kit.idempotency import idempotency_table

SCHEMA = "complaint"


class Channel(StrEnum):
    hotline = "hotline"  # 10000
    store = "store"
    app = "app"
    letter = "letter"
    regulator = "regulator"  # 工信部申诉
    social_media = "social_media"


class Severity(StrEnum):
    normal = "normal"
    urgent = "urgent"
    critical = "critical"

    def raised(self) -> Severity:
        order = list(Severity)
        return order[min(order.index(self) + 1, len(order) - 1)]

    def at_least(self, other: Severity) -> Severity:
        order = list(Severity)
        return self if order.index(self) >= order.index(other) else other


class State(StrEnum):
    new = "new"
    acknowledged = "acknowledged"  # 情绪认同
    facts_clarified = "facts_clarified"  # 事实澄清
    solution_agreed = "solution_agreed"  # 方案讨论
    tracking = "tracking"  # 执行跟踪
    waiting_customer = "waiting_customer"
    closed = "closed"


OPEN_STATES = tuple(s for s in State if s is not State.closed)


class Responsibility(StrEnum):
    ours = "ours"
    customer = "customer"
    third_party = "third_party"
    unclear = "unclear"


class Need(StrEnum):
    # emotional
    be_heard = "be_heard"
    be_respected = "be_respected"
    be_taken_seriously = "be_taken_seriously"
    # rational
    fix_now = "fix_now"
    never_again = "never_again"
    compensation = "compensation"
    someone_responsible = "someone_responsible"


class Metric(StrEnum):
    first_response = "first_response"  # open -> acknowledged
    facts_clarified = "facts_clarified"  # acknowledged -> facts clarified
    solution_agreed = "solution_agreed"  # facts clarified -> solution agreed
    tracking = "tracking"  # solution agreed -> tracking
    resolution = "resolution"  # open -> closed


class ClockState(StrEnum):
    waiting = "waiting"  # its step has not started
    running = "running"
    paused = "paused"
    met = "met"
    breached = "breached"  # stopped after its due time


class CompensationKind(StrEnum):
    bill_credit = "bill_credit"
    data_pack = "data_pack"
    gift = "gift"
    points = "points"
    other = "other"


class CompensationStatus(StrEnum):
    requested = "requested"
    approved = "approved"
    rejected = "rejected"
    executed = "executed"


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True)))
    return Field(
        default_factory=clock.now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


def _json(default: Any) -> Any:
    return Field(
        default_factory=lambda: type(default)(default),
        sa_column=Column(JSONB, nullable=False, server_default=text(f"'{default!s}'::jsonb")),
    )


class Customer(SQLModel, table=True):
    """What complaints need of a profile customer; fed by profile's customer events."""

    __tablename__ = "customer"
    __table_args__ = {"schema": SCHEMA}

    msisdn: str = Field(primary_key=True, max_length=11)
    version: int
    # Profile's id of the customer: the key partners' reads go by (they hold no number).
    customer_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    name: str = Field(max_length=50)
    honorific: str = Field(default="", max_length=10)
    status: str = Field(max_length=20)
    tier: str = Field(max_length=20)
    manager_id: str | None = Field(default=None, max_length=32)
    team_id: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _ts()


class Category(SQLModel, table=True):
    """Complaint categories are data an admin edits, not code."""

    __tablename__ = "category"
    __table_args__ = {"schema": SCHEMA}

    code: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=60)
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    position: int = 0


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_msisdn_opened_at", "msisdn", "opened_at"),
        Index("ix_ticket_team_id_state", "team_id", "state"),
        Index("ix_ticket_handler_next_due", "handler_id", "next_due_at"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    number: str = Field(sa_column=Column(String(20), nullable=False, unique=True))
    msisdn: str = Field(max_length=11)
    channel: Channel = Field(sa_column=enum_column(Channel, "channel"))
    category: str = Field(
        sa_column=Column(String(40), ForeignKey(f"{SCHEMA}.category.code"), nullable=False)
    )
    description: str = Field(max_length=4000)
    severity: Severity = Field(sa_column=enum_column(Severity, "severity"))
    requested_severity: Severity = Field(sa_column=enum_column(Severity, "requested_severity"))
    state: State = Field(sa_column=enum_column(State, "state"))
    resume_state: State | None = Field(
        default=None, sa_column=enum_column(State, "resume_state", nullable=True)
    )
    """The state to return to when a pause for the customer ends."""
    needs: list[str] = _json([])
    handler_id: str | None = Field(default=None, max_length=64)
    team_id: str | None = Field(default=None, max_length=32)
    tier: str = Field(default="none", max_length=20)
    is_repeat: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    repeat_of_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"))
    )
    policy_id: int | None = None
    version: int = 1
    opened_at: datetime = _ts()
    opened_by: str = Field(max_length=64)
    updated_at: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    reopened_count: int = 0
    satisfaction: int | None = None
    satisfaction_reason: str | None = Field(default=None, max_length=1000)
    next_due_at: datetime | None = _ts(nullable=True)
    """The earliest due time among running clocks (my queue, due-before filter)."""
    breached: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))


class Step(SQLModel, table=True):
    """Each recorded step: who, when, notes and what the step records."""

    __tablename__ = "step"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False, index=True)
    )
    step: str = Field(max_length=30)
    from_state: str = Field(max_length=30)
    to_state: str = Field(max_length=30)
    by: str = Field(max_length=64)
    at: datetime = _ts()
    notes: str = Field(default="", max_length=4000)
    data: dict[str, Any] = _json({})


class Action(SQLModel, table=True):
    """An action agreed with the customer, with an owner and a due date."""

    __tablename__ = "action"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False, index=True)
    )
    description: str = Field(max_length=1000)
    owner: str = Field(max_length=64)
    due_on: date
    done: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    done_at: datetime | None = _ts(nullable=True)
    note: str = Field(default="", max_length=1000)


class Attachment(SQLModel, table=True):
    """A reference to a file kept elsewhere (URL or object key); no storage of our own."""

    __tablename__ = "attachment"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False, index=True)
    )
    ref: str = Field(max_length=1000)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    content_type: str = Field(max_length=100)
    added_by: str = Field(max_length=64)
    added_at: datetime = _ts()


class BusinessCalendarRow(SQLModel, table=True):
    __tablename__ = "calendar"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(Integer, Identity(), primary_key=True))
    name: str = Field(sa_column=Column(String(60), nullable=False, unique=True))
    time_zone: str = Field(default="Asia/Shanghai", max_length=60)
    hours: list[list[str]] = _json([])
    working_weekdays: list[int] = _json([])
    version: int = 1
    updated_at: datetime = _ts()


class CalendarYear(SQLModel, table=True):
    """Which years a calendar has a schedule for, and whether it is the official one."""

    __tablename__ = "calendar_year"
    __table_args__ = {"schema": SCHEMA}

    calendar_id: int = Field(
        sa_column=Column(Integer, ForeignKey(f"{SCHEMA}.calendar.id"), primary_key=True)
    )
    year: int = Field(primary_key=True)
    provisional: bool = Field(sa_column=Column(Boolean, nullable=False))
    source: str = Field(max_length=60)
    loaded_by: str = Field(max_length=64)
    loaded_at: datetime = _ts()


class CalendarDay(SQLModel, table=True):
    """A date that differs from the weekly pattern: a day off, or a weekend working day."""

    __tablename__ = "calendar_day"
    __table_args__ = {"schema": SCHEMA}

    calendar_id: int = Field(
        sa_column=Column(Integer, ForeignKey(f"{SCHEMA}.calendar.id"), primary_key=True)
    )
    day: date = Field(primary_key=True)
    working: bool = Field(sa_column=Column(Boolean, nullable=False))
    name: str = Field(default="", max_length=100)


class SlaPolicy(SQLModel, table=True):
    """Ordered policies: the first active one whose conditions match applies. ``targets``
    maps a metric to ``{"minutes": n, "business": bool}``."""

    __tablename__ = "sla_policy"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(Integer, Identity(), primary_key=True))
    name: str = Field(max_length=100)
    position: int
    conditions: dict[str, Any] = _json({})
    targets: dict[str, Any] = _json({})
    calendar_id: int = Field(
        sa_column=Column(Integer, ForeignKey(f"{SCHEMA}.calendar.id"), nullable=False)
    )
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    version: int = 1
    updated_at: datetime = _ts()


class SlaClock(SQLModel, table=True):
    """One metric's clock on one ticket. Time used and paused are kept as settled totals
    plus the start of the current segment, so a policy or calendar change settles the
    segment under the old rules and goes on under the new ones without losing time."""

    __tablename__ = "sla_clock"
    __table_args__ = (
        UniqueConstraint("ticket_id", "metric"),
        # The sweep's one indexed query: clocks whose next warning/escalation is due.
        Index(
            "ix_sla_clock_next_alert_at",
            "next_alert_at",
            postgresql_where=text("next_alert_at IS NOT NULL"),
        ),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False)
    )
    metric: Metric = Field(sa_column=enum_column(Metric, "metric"))
    state: ClockState = Field(sa_column=enum_column(ClockState, "clock_state"))
    policy_id: int | None = None
    calendar_id: int | None = None
    target_minutes: int
    business: bool = Field(sa_column=Column(Boolean, nullable=False))
    started_at: datetime | None = _ts(nullable=True)
    segment_start: datetime | None = _ts(nullable=True)
    used_seconds: float = 0.0
    paused_since: datetime | None = _ts(nullable=True)
    paused_seconds: float = 0.0
    stopped_at: datetime | None = _ts(nullable=True)
    due_at: datetime | None = _ts(nullable=True)
    cycle: int = 0
    alert_level: int = 0
    next_alert_at: datetime | None = _ts(nullable=True)
    breached_at: datetime | None = _ts(nullable=True)


class SlaAlert(SQLModel, table=True):
    """A warning (level 1), breach escalation (2) or further escalation (3): one row per
    ticket, metric, level and due-time cycle, written in the same transaction as its events."""

    __tablename__ = "sla_alert"
    __table_args__ = (
        UniqueConstraint("ticket_id", "metric", "level", "cycle"),
        Index("ix_sla_alert_target_id", "target_id"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False)
    )
    metric: str = Field(max_length=30)
    level: int
    cycle: int
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    target_id: str | None = Field(default=None, max_length=64)
    fired_at: datetime = _ts()


class EscalationContact(SQLModel, table=True):
    """Whom a team's breaches go to: its supervisor, then an escalation manager."""

    __tablename__ = "escalation_contact"
    __table_args__ = {"schema": SCHEMA}

    team_id: str = Field(primary_key=True, max_length=32)
    supervisor_id: str | None = Field(default=None, max_length=64)
    escalation_manager_id: str | None = Field(default=None, max_length=64)
    updated_by: str = Field(max_length=64)
    updated_at: datetime = _ts()


class Compensation(SQLModel, table=True):
    __tablename__ = "compensation"
    __table_args__ = (
        Index("ix_compensation_msisdn_requested_at", "msisdn", "requested_at"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey(f"{SCHEMA}.ticket.id"), nullable=False, index=True)
    )
    msisdn: str = Field(max_length=11)
    kind: CompensationKind = Field(sa_column=enum_column(CompensationKind, "kind"))
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(max_length=1000)
    status: CompensationStatus = Field(sa_column=enum_column(CompensationStatus, "status"))
    approval: str = Field(max_length=20)
    """Who must approve: none, supervisor or admin."""
    requested_by: str = Field(max_length=64)
    requested_at: datetime = _ts()
    decided_by: str | None = Field(default=None, max_length=64)
    executed_by: str | None = Field(default=None, max_length=64)
    executed_at: datetime | None = _ts(nullable=True)


class CompensationAudit(SQLModel, table=True):
    """Append-only: every request, decision and execution (a trigger refuses changes)."""

    __tablename__ = "compensation_audit"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    compensation_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey(f"{SCHEMA}.compensation.id"), nullable=False, index=True
        )
    )
    action: str = Field(max_length=20)
    by: str = Field(max_length=64)
    role: str = Field(max_length=20)
    at: datetime = _ts()
    reason: str = Field(default="", max_length=1000)
    details: dict[str, Any] = _json({})


events = event_tables(SCHEMA)
idempotency = idempotency_table(SCHEMA)  # Idempotency-Key answers of the create routes
change_audit = change_audit_table(SCHEMA)  # who changed what through the API
