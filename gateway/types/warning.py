"""Churn warnings (流失预警) and risk scores."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from gateway.access import check
from gateway.types.common import Info, later
from gateway.types.enums import (
    RetentionActionKind,
    WarningOutcome,
    WarningSeverity,
    WarningSignal,
    WarningStatus,
)

if TYPE_CHECKING:
    from gateway.types.profile import Customer


@strawberry.type(name="Warning", description="A churn warning (流失预警) and its follow-up.")
class ChurnWarning:
    id: strawberry.ID
    msisdn: str
    signal: WarningSignal
    signal_name: str = strawberry.field(description="The signal's Chinese name.")
    status: WarningStatus
    severity: WarningSeverity
    risk_score: int = strawberry.field(description="The customer's risk when last detected.")
    weight: int = strawberry.field(description="This signal's share of the risk score.")
    summary: str = strawberry.field(description="What was seen, in a sentence (中文).")
    evidence: JSON = strawberry.field(description="The figures the rule saw.")
    first_detected_on: date
    last_detected_on: date
    due_on: date = strawberry.field(description="Follow up by this Beijing date.")
    manager_id: str | None
    team_id: str | None
    raised_at: datetime
    contacted_at: datetime | None
    resolved_at: datetime | None
    outcome: WarningOutcome | None
    retention_action: RetentionActionKind | None
    churn_reason: str | None
    resolution_note: str = strawberry.field(description="Empty for partners.")
    customer_id: strawberry.ID | None = strawberry.field(
        description="The customer's id (`customer(id:)`)."
    )

    @strawberry.field(description="The customer warned about.")
    def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("gateway.types.profile")] | None:
        check(info, "customers:read")
        return later(info.context.loaders.customer_of(self.msisdn, self.customer_id))


@strawberry.type(description="One open signal's part in a risk score.")
class RiskComponent:
    signal: WarningSignal
    signal_name: str
    weight: int
    warning_id: int
    summary: str


@strawberry.type(description="A customer's churn risk 0-100 (流失风险) and how it is made.")
class RiskScore:
    score: int
    severity: WarningSeverity | None
    components: list[RiskComponent]


@strawberry.type(description="One signal's rule, for all tiers or as an override for one.")
class Rule:
    signal: WarningSignal
    tier: str | None = strawberry.field(description="Null: every tier.")
    enabled: bool
    weight: int = strawberry.field(description="Points this signal adds to the risk score.")
    cooling_off_days: int
    params: JSON = strawberry.field(description="The signal's thresholds.")


@strawberry.type(description="How a risk score maps to a severity and a due date.")
class Band:
    severity: WarningSeverity
    min_score: int
    due_days: int


@strawberry.type(description="The versioned rules of churn detection (预警规则).")
class RuleSet:
    version: int
    rules: list[Rule]
    bands: list[Band]
    note: str
    created_by: str
    created_at: datetime
