"""Request and response models of the warning service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.kit.masking import mask_msisdn, mask_numbers
from services.kit.values import PastInstant
from services.profile.contract import ContactChannel, ContactDirection, ContactOutcome
from services.warning.evidence import SIGNAL_NAMES, describe
from services.warning.models import (
    ChurnReason,
    Outcome,
    RetentionAction,
    Severity,
    Signal,
    Status,
    Warning,
)
from services.warning.rules import Band, Rule

MSISDN_PATTERN = r"^1[3-9]\d{9}$"


class UsageRow(BaseModel):
    """One subscriber-day of the operator's usage feed."""

    model_config = ConfigDict(extra="forbid")

    msisdn: str = Field(pattern=MSISDN_PATTERN)
    day: date
    outgoing_calls: int = Field(ge=0)
    minutes: int = Field(ge=0)
    data_mb: int = Field(ge=0)
    spend: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    balance: Decimal = Field(max_digits=12, decimal_places=2)
    competitor_hotline_calls: int = Field(0, ge=0)
    forwarded_to_other_network: int = Field(0, ge=0)
    other_network_call_share: float = Field(0.0, ge=0, le=1)
    competitor_marketing_contacts: int | None = Field(None, ge=0, description="None: unknown")

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.msisdn,
            self.day,
            self.outgoing_calls,
            self.minutes,
            self.data_mb,
            self.spend,
            self.balance,
            self.competitor_hotline_calls,
            self.forwarded_to_other_network,
            self.other_network_call_share,
            self.competitor_marketing_contacts,
        )


class UsageBatch(BaseModel):
    rows: list[dict[str, Any]] = Field(description="UsageRow objects; bad rows are reported")


class RowError(BaseModel):
    row: int = Field(description="1-based position in the batch (line number for files)")
    field: str | None
    message: str


class UsageBatchResult(BaseModel):
    accepted: int
    rejected: list[RowError]


class WarningRead(BaseModel):
    id: int
    msisdn: str
    signal: Signal
    signal_name: str
    status: Status
    severity: Severity
    risk_score: int
    weight: int
    rule_version: int
    summary: str
    evidence: dict[str, Any]
    first_detected_on: date
    last_detected_on: date
    due_on: date
    manager_id: str | None
    team_id: str | None
    raised_at: datetime
    contacted_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: Outcome | None
    retention_action: RetentionAction | None
    churn_reason: ChurnReason | None
    resolution_note: str
    customer_id: int | None = Field(
        None, description="profile's id of the customer (null while the copy lacks it)"
    )

    @classmethod
    def of(cls, w: Warning, customer_id: int | None) -> WarningRead:
        data = w.model_dump()
        return cls(
            **data,
            signal_name=SIGNAL_NAMES[w.signal],
            summary=describe(w.signal, w.evidence),
            customer_id=customer_id,
        )

    def for_partner(self, sees_numbers: bool) -> WarningRead:
        """What a partner reads: the signal, its figures and where the follow-up stands;
        the number masked (unless the partner may see numbers), and nothing a person wrote
        or who did it (the resolution note, the manager, who resolved it)."""
        return self.model_copy(
            update={
                "msisdn": self.msisdn if sees_numbers else mask_msisdn(self.msisdn),
                "evidence": self.evidence if sees_numbers else mask_numbers(self.evidence),
                "manager_id": None,
                "resolved_by": None,
                "resolution_note": "",
            }
        )


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ContactChannel
    direction: ContactDirection = ContactDirection.outbound
    outcome: ContactOutcome
    at: PastInstant | None = Field(
        None,
        description="when it happened (not ahead of now by more than 5 minutes); defaults to now",
    )
    note: str = Field("", max_length=1000)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("须带时区，如 2026-11-23T10:00:00+08:00")
        return value


class ContactRead(BaseModel):
    id: int
    warning_id: int
    msisdn: str
    channel: str
    direction: str
    outcome: str
    at: datetime
    by: str
    note: str


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    retention_action: RetentionAction | None = Field(
        None, description="required when retained; for churned, the offer that failed"
    )
    churn_reason: ChurnReason | None = Field(None, description="required when churned")
    note: str = Field("", max_length=1000)


class WarningDetail(WarningRead):
    contacts: list[ContactRead]


class RiskComponent(BaseModel):
    signal: Signal
    signal_name: str
    weight: int
    warning_id: int
    summary: str


class RiskRead(BaseModel):
    """A subscriber's risk score and how it is made: the open signals and their weights."""

    msisdn: str
    customer_id: int | None = Field(
        None, description="profile's id of the customer (null while the copy lacks it)"
    )
    score: int
    severity: Severity | None
    components: list[RiskComponent]


class RuleSetRead(BaseModel):
    version: int
    rules: list[Rule]
    bands: list[Band]
    note: str
    created_by: str
    created_at: datetime


class RuleUpdate(BaseModel):
    """A new version of one signal's rule (for all tiers, or an override for ``tier``)."""

    model_config = ConfigDict(extra="forbid")

    tier: str | None = None
    enabled: bool | None = None
    weight: int | None = Field(None, ge=0, le=100)
    cooling_off_days: int | None = Field(None, ge=0, le=365)
    params: dict[str, Any] | None = Field(None, description="only the parameters to change")
    note: str = Field("", max_length=500)


class BandsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bands: list[Band] = Field(min_length=1)
    note: str = Field("", max_length=500)


class DetectionResult(BaseModel):
    day: date
    rule_version: int
    raised: int
    updated: int
    rescored: int
    query_seconds: float = Field(description="detection and rescoring, set-based")
    publish_seconds: float = Field(description="writing warning.raised events to the outbox")


class DetectionQueued(BaseModel):
    day: date
    job_id: str
    queued: bool = Field(description="false: a run of that day is already queued or recent")


class Count(BaseModel):
    key: str | None
    count: int


class OpenReport(BaseModel):
    by_signal: list[Count]
    by_severity: list[Count]
    by_manager: list[Count]


class Rate(BaseModel):
    key: str | None
    retained: int
    churned: int
    false_alarm: int
    success_rate: float | None = Field(description="retained / (retained + churned)")


class RetentionReport(BaseModel):
    period_from: date
    period_to: date = Field(description="the day after the last day counted")
    by_action: list[Rate]
    by_signal: list[Rate]


class ChurnReasonReport(BaseModel):
    period_from: date
    period_to: date = Field(description="the day after the last day counted")
    reasons: list[Count]
