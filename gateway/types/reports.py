"""KPI reports for a period (Beijing days; ``to`` is the day after the last)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry


@strawberry.type(description="One group's reach: customers on file, and those contacted.")
class ReachGroup:
    group: str
    customers: int
    reached: int
    rate: float = strawberry.field(description="reached / customers.")


@strawberry.type(description="Service reach rate (服务到达率): VIPs contacted at least once.")
class ReachReport:
    period_from: date
    period_to: date
    group_by: str
    groups: list[ReachGroup]
    total: ReachGroup


@strawberry.type(description="Warnings resolved: retained, churned, false alarms.")
class OutcomeRate:
    key: str | None = strawberry.field(description="The action or signal; null: none given.")
    retained: int
    churned: int
    false_alarm: int
    success_rate: float | None = strawberry.field(description="retained / (retained + churned).")


@strawberry.type(description="Retention success (挽留成功率) by action and by signal.")
class WarningOutcomes:
    period_from: date
    period_to: date
    by_action: list[OutcomeRate]
    by_signal: list[OutcomeRate]


@strawberry.type(description="One SLA metric's compliance in a group.")
class SlaMetricReport:
    metric: str
    stopped: int
    met: int
    breached: int
    compliance: float | None = strawberry.field(description="met / stopped.")
    avg_business_hours: float | None
    p90_business_hours: float | None


@strawberry.type(description="Complaints of one group: volumes, satisfaction, SLA compliance.")
class ComplaintGroupReport:
    group: str | None
    opened: int
    closed: int
    repeat_rate: float | None
    avg_satisfaction: float | None
    compensation_executed: Decimal
    metrics: list[SlaMetricReport]


@strawberry.type(description="SLA compliance (SLA 达成率) and complaint handling, by group.")
class SlaCompliance:
    group_by: str
    start: date
    end: date
    groups: list[ComplaintGroupReport]


@strawberry.type(description="Retention of one team's or manager's VIP base.")
class RetentionRow:
    team_id: str = strawberry.field(description="The team at the base snapshot.")
    manager_id: str | None = strawberry.field(description="Per-manager rows: the manager then.")
    base: int = strawberry.field(description="Active VIPs in the base snapshot.")
    retained: int = strawberry.field(description="Of those, still active VIPs at `to`.")
    lost: int
    rate: float = strawberry.field(description="retained / base.")


@strawberry.type(
    description="Retention rate (保有率): of the VIPs on file at the start of the period (the "
    "snapshot, 拍照), the share still active VIPs at its end."
)
class RetentionRate:
    period_from: date
    period_to: date
    base_snapshot: date = strawberry.field(description="The snapshot the base comes from.")
    measured_at: str = strawberry.field(
        description="`snapshot`: the snapshot taken at `to`; `live`: the archive now."
    )
    team_id: str | None
    base: int
    retained: int
    lost: int
    rate: float
    teams: list[RetentionRow]
    managers: list[RetentionRow]


@strawberry.type(description="One unmasked read of a customer's personal data (审计).")
class ReadAuditEntry:
    id: strawberry.ID
    at: datetime
    request_id: str | None = strawberry.field(description="The request it was part of.")
    user_id: str
    role: str
    caller: str | None = strawberry.field(description="An internal caller, if not a person.")
    action: str
    msisdn: str
    fields: list[str] = strawberry.field(description="The personal fields served unmasked.")
