"""Request and response models of the complaint service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.complaint.models import (
    Channel,
    CompensationKind,
    Metric,
    Need,
    Responsibility,
    Severity,
)
from services.kit.masking import mask_msisdn

MSISDN_PATTERN = r"^1[3-9]\d{9}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttachmentIn(Strict):
    ref: str = Field(min_length=1, max_length=1000, description="URL or object-store key")
    size: int = Field(ge=0, le=2 * 1024**3)
    content_type: str = Field(min_length=3, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+$")


class ComplaintCreate(Strict):
    msisdn: str = Field(pattern=MSISDN_PATTERN)
    channel: Channel
    category: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=4000)
    severity: Severity = Severity.normal
    needs: list[Need] = []
    handler_id: str | None = Field(None, max_length=64, description="default: the manager")
    attachments: list[AttachmentIn] = Field([], max_length=20)


class Versioned(Strict):
    version: int = Field(ge=1, description="the version you read (optimistic concurrency)")
    notes: str = Field("", max_length=4000)


class CustomerFacing(Versioned):
    contact_channel: str = Field(
        "call", pattern=r"^(call|visit|sms|im|email|app)$", description="how it reached them"
    )


class Acknowledge(CustomerFacing):
    """情绪认同: the emotion heard and recorded, and the customer's needs."""

    emotion: str = Field(min_length=1, max_length=1000)
    needs: list[Need] | None = None


class Clarify(Versioned):
    """事实澄清: findings and responsibility."""

    findings: str = Field(min_length=1, max_length=4000)
    responsibility: Responsibility


class Disagreement(Strict):
    point: str = Field(min_length=1, max_length=1000)
    resolution: str = Field(min_length=1, max_length=1000)


class ActionIn(Strict):
    description: str = Field(min_length=1, max_length=1000)
    owner: str = Field(min_length=1, max_length=64)
    due_on: date


class Agree(CustomerFacing):
    """方案讨论: points agreed, disagreements (each with how it was resolved), actions."""

    agreed: list[str] = Field(min_length=1, max_length=50)
    disagreements: list[Disagreement] = Field([], max_length=50)
    actions: list[ActionIn] = Field(min_length=1, max_length=50)


class ActionUpdate(Strict):
    action_id: int
    done: bool
    note: str = Field("", max_length=1000)


class Track(Versioned):
    """执行跟踪: each action done or not, with notes."""

    actions: list[ActionUpdate] = Field(min_length=1, max_length=50)


class Close(CustomerFacing):
    satisfaction: int | None = Field(None, ge=1, le=5)
    reason: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _reason_when_unhappy(self) -> Close:
        if self.satisfaction is not None and self.satisfaction <= 2 and not self.reason:
            raise ValueError("reason is required when satisfaction is 1 or 2")
        return self


class Satisfaction(Strict):
    """The customer's answer to the follow-up (by SMS reply or recorded by the handler)."""

    satisfaction: int = Field(ge=1, le=5)
    reason: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _reason_when_unhappy(self) -> Satisfaction:
        if self.satisfaction <= 2 and not self.reason:
            raise ValueError("reason is required when satisfaction is 1 or 2")
        return self


class Reassign(Versioned):
    handler_id: str = Field(min_length=1, max_length=64)
    team_id: str | None = Field(None, max_length=32)


class StepRead(BaseModel):
    id: int
    step: str
    from_state: str
    to_state: str
    by: str
    at: datetime
    notes: str
    data: dict[str, Any]


class ActionRead(BaseModel):
    id: int
    description: str
    owner: str
    due_on: date
    done: bool
    done_at: datetime | None
    note: str


class AttachmentRead(BaseModel):
    id: int
    ref: str
    size: int
    content_type: str
    added_by: str
    added_at: datetime


class SlaMetricRead(BaseModel):
    metric: str
    target_minutes: int
    business_hours: bool
    state: str
    started_at: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    used_seconds: float
    paused_seconds: float
    cycle: int
    provisional_years: list[int]


class SlaRead(BaseModel):
    policy_id: int | None
    policy_name: str | None
    metrics: list[SlaMetricRead]
    provisional: bool = Field(description="a due time falls in a year with no official schedule")
    note: str | None = None


class TicketSlaRead(SlaRead):
    complaint_id: int


class ComplaintRead(BaseModel):
    id: int
    number: str
    msisdn: str
    channel: str
    category: str
    description: str
    severity: str
    requested_severity: str
    state: str
    resume_state: str | None
    needs: list[str]
    handler_id: str | None
    team_id: str | None
    tier: str
    is_repeat: bool
    repeat_of_id: int | None
    version: int
    opened_at: datetime
    opened_by: str
    updated_at: datetime
    closed_at: datetime | None
    reopened_count: int
    satisfaction: int | None
    satisfaction_reason: str | None
    next_due_at: datetime | None
    breached: bool
    allowed_next: list[str]
    customer_id: int | None = Field(
        None, description="profile's id of the customer (null while the copy lacks it)"
    )

    def for_partner(self, sees_numbers: bool) -> ComplaintRead:
        """What a partner reads: what the complaint is about and where its handling and
        SLA stand; the number masked (unless the partner may see numbers), and nothing a
        person wrote or who did it (the description, the satisfaction reason, the handler,
        who opened it)."""
        return self.model_copy(
            update={
                "msisdn": self.msisdn if sees_numbers else mask_msisdn(self.msisdn),
                "description": "",
                "satisfaction_reason": None,
                "handler_id": None,
                "opened_by": "",
            }
        )


class CompensationSummary(BaseModel):
    customer_total_12_months: Decimal
    customer_pending_12_months: Decimal
    count_12_months: int


class ComplaintDetail(ComplaintRead):
    steps: list[StepRead]
    actions: list[ActionRead]
    attachments: list[AttachmentRead]
    sla: SlaRead
    compensation: CompensationSummary | None = Field(description="null for partners")


class ComplaintPage(BaseModel):
    items: list[ComplaintRead]
    next_cursor: str | None


class CategoryIn(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    name: str = Field(min_length=1, max_length=60)
    active: bool = True
    position: int = 0


class CategoryUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=60)
    active: bool | None = None
    position: int | None = None


class CategoryRead(BaseModel):
    code: str
    name: str
    active: bool
    position: int


class Target(Strict):
    minutes: int = Field(ge=1, le=60 * 24 * 365)
    business: bool = True


class PolicyConditions(Strict):
    severity: list[Severity] | None = None
    tier: list[str] | None = None
    channel: list[Channel] | None = None
    category: list[str] | None = None
    repeat: bool | None = None


class PolicyIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    position: int
    conditions: PolicyConditions = PolicyConditions()
    targets: dict[Metric, Target] = Field(min_length=1)
    calendar_id: int | None = None
    active: bool = True


class PolicyRead(BaseModel):
    id: int
    name: str
    position: int
    conditions: dict[str, Any]
    targets: dict[str, Any]
    calendar_id: int
    active: bool
    version: int
    updated_at: datetime


class CalendarUpdate(Strict):
    hours: list[list[str]] | None = Field(None, description='e.g. [["08:30","12:00"], ...]')
    working_weekdays: list[int] | None = Field(None, description="0 = Monday")
    time_zone: str | None = None

    @field_validator("working_weekdays")
    @classmethod
    def _weekdays(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(d < 0 or d > 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return value


class YearImport(Strict):
    """A year's official schedule (State Council notice): days off and weekend working
    days. Days not listed follow the weekly pattern."""

    days_off: list[date] = Field(max_length=60)
    workdays: list[date] = Field([], max_length=30)
    names: dict[date, str] = {}
    source: str = Field("official", max_length=60)


class CalendarYearRead(BaseModel):
    year: int
    provisional: bool
    source: str
    days_off: list[date]
    workdays: list[date]
    loaded_at: datetime | None


class CalendarRead(BaseModel):
    id: int
    name: str
    time_zone: str
    hours: list[list[str]]
    working_weekdays: list[int]
    version: int
    years: list[CalendarYearRead]
    provisional_years: list[int]
    note: str | None


class EscalationContactIn(Strict):
    supervisor_id: str | None = Field(None, max_length=64)
    escalation_manager_id: str | None = Field(None, max_length=64)


class EscalationContactRead(BaseModel):
    team_id: str
    supervisor_id: str | None
    escalation_manager_id: str | None
    updated_by: str
    updated_at: datetime


class AlertRead(BaseModel):
    id: int
    ticket_id: int
    number: str
    metric: str
    level: int
    level_name: str
    cycle: int
    due_at: datetime
    target_id: str | None
    fired_at: datetime


class CompensationIn(Strict):
    kind: CompensationKind
    amount: Decimal = Field(description="yuan, to the fen", gt=0, max_digits=12)
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("amount")
    @classmethod
    def _fen(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("amount is in yuan with at most two decimals (fen)")
        return value


class Decision(Strict):
    reason: str = Field("", max_length=1000)


class CompensationRead(BaseModel):
    id: int
    ticket_id: int
    msisdn: str
    kind: str
    amount: Decimal
    reason: str
    status: str
    approval: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    executed_by: str | None
    executed_at: datetime | None


class AuditRead(BaseModel):
    id: int
    compensation_id: int
    action: str
    by: str
    role: str
    at: datetime
    reason: str
    details: dict[str, Any]


class SweepResult(BaseModel):
    warnings: int
    breaches: int
    escalations: int
    seconds: float


class MetricReport(BaseModel):
    metric: str
    stopped: int
    met: int
    breached: int
    compliance: float | None
    avg_business_hours: float | None
    p90_business_hours: float | None


class GroupReport(BaseModel):
    group: str | None
    opened: int
    closed: int
    repeat_rate: float | None
    avg_satisfaction: float | None
    compensation_executed: Decimal
    metrics: list[MetricReport]


class Report(BaseModel):
    group_by: str
    start: date
    end: date
    groups: list[GroupReport]
