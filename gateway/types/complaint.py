"""Complaint tickets (客户投诉) with their SLA clocks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway.access import check
from gateway.types.common import Info, build_all, later

if TYPE_CHECKING:
    from gateway.types.profile import Customer


@strawberry.type(description="One SLA clock of a complaint (e.g. first response, resolution).")
class SlaMetric:
    metric: str
    target_minutes: int
    business_hours: bool = strawberry.field(description="Counted on the business calendar.")
    state: str = strawberry.field(description="running, paused, met or breached.")
    started_at: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    used_seconds: float
    paused_seconds: float


@strawberry.type(description="The SLA a complaint runs under, and each of its clocks.")
class Sla:
    policy_name: str | None
    metrics: list[SlaMetric]
    provisional: bool = strawberry.field(
        description="A due time falls in a year with no official holiday schedule yet."
    )


@strawberry.type(description="A step of the 4-step handling flow, as recorded.")
class ComplaintStep:
    step: str
    from_state: str
    to_state: str
    by: str
    at: datetime
    notes: str


@strawberry.type(description="A complaint ticket (投诉工单).")
class Complaint:
    id: strawberry.ID
    number: str = strawberry.field(description="The ticket number customers are told.")
    msisdn: str
    channel: str = strawberry.field(description="hotline 10000, store, app, letter, regulator...")
    category: str
    description: str = strawberry.field(description="Empty for partners.")
    severity: str = strawberry.field(description="normal, urgent or critical.")
    state: str = strawberry.field(description="Where the 4-step flow stands.")
    needs: list[str] = strawberry.field(description="The customer's needs, as the handler heard.")
    handler_id: str | None
    team_id: str | None
    is_repeat: bool = strawberry.field(description="Same customer and category within 30 days.")
    version: int = strawberry.field(description="Pass back with each step (optimistic locking).")
    opened_at: datetime
    closed_at: datetime | None
    satisfaction: int | None = strawberry.field(description="1-5, asked at closing.")
    next_due_at: datetime | None = strawberry.field(description="The nearest SLA due time.")
    breached: bool = strawberry.field(description="An SLA clock has run out.")
    allowed_next: list[str] = strawberry.field(description="The steps that may come next.")
    customer_id: strawberry.ID | None = strawberry.field(
        description="The customer's id (`customer(id:)`)."
    )

    @strawberry.field(description="The complaining customer.")
    def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("gateway.types.profile")] | None:
        check(info, "customers:read")
        return later(info.context.loaders.customer_of(self.msisdn, self.customer_id))

    @strawberry.field(description="Its SLA clocks (SLA 时限), per metric.")
    def sla(self, info: Info) -> Sla | None:
        return later(info.context.loaders.sla.load(str(self.id)))

    @strawberry.field(description="The steps recorded so far (one call each).")
    async def steps(self, info: Info) -> list[ComplaintStep] | None:
        check(info, None)  # the handler's notes: staff only
        rows = await info.context.service("complaint").get(
            info.context.caller, f"/complaints/{self.id}/steps"
        )
        return build_all(ComplaintStep, rows)


@strawberry.type(description="A compensation (补偿) and where its approval stands.")
class Compensation:
    id: strawberry.ID
    ticket_id: int
    kind: str
    amount: Decimal = strawberry.field(description="Yuan.")
    reason: str
    status: str = strawberry.field(description="requested, approved, rejected or executed.")
    approval: str = strawberry.field(description="Who must approve it, by the amount.")
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    executed_at: datetime | None
