"""Customers (客户档案), their managers and teams, contact log and manager history."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from gateway.access import check
from gateway.types.common import Connection, Info, build_all, connection, later
from gateway.types.enums import (
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    CustomerStatus,
    Gender,
    Lifecycle,
    ServiceLevel,
    Tier,
    ValueQuadrant,
)

if TYPE_CHECKING:
    from gateway.types.care import CareHistory
    from gateway.types.complaint import Complaint
    from gateway.types.warning import ChurnWarning, RiskScore


@strawberry.type(description="A customer team (客户经理团队) and its supervisor.")
class Team:
    id: strawberry.ID
    name: str
    region: str = strawberry.field(description="Province (省份) the team serves.")
    supervisor_id: str | None
    supervisor_name: str


@strawberry.type(description="A customer manager (客户经理).")
class Manager:
    id: strawberry.ID
    name: str
    phone: str = strawberry.field(
        description="Masked (138****1234) for callers who may not see numbers."
    )
    team_id: str
    active: bool
    left_on: date | None = strawberry.field(description="The day they left, if they did.")

    @strawberry.field(description="Their team.")
    def team(self, info: Info) -> Team | None:
        return later(info.context.loaders.team.load(self.team_id))


@strawberry.type(description="A named date of the customer's (纪念日), e.g. a wedding day.")
class ImportantDate:
    label: str = strawberry.field(description="What the day is, e.g. 结婚纪念日.")
    date: date


@strawberry.type(description="One contact with the customer (接触记录), from any channel.")
class ContactEntry:
    id: strawberry.ID
    channel: ContactChannel
    direction: ContactDirection
    at: datetime
    by: str = strawberry.field(description="Who made it: a manager id, or a service.")
    outcome: ContactOutcome
    note: str | None
    source: str = strawberry.field(description="The service or import that recorded it.")


@strawberry.type(description="A period during which one manager looked after the customer.")
class ManagerAssignment:
    manager_id: str
    started_at: datetime
    ended_at: datetime | None
    assigned_by: str
    reason: str | None


@strawberry.type(description="A customer's archive (客户档案), with what hangs off it.")
class Customer:
    id: strawberry.ID
    msisdn: str = strawberry.field(
        description="Mobile number; masked (138****1234) for callers who may not see numbers."
    )
    name: str
    gender: Gender
    honorific: str = strawberry.field(description="How SMS address them, e.g. 张先生.")
    birthday: date | None
    region: str = strawberry.field(description="Province (省份).")
    city: str
    join_date: date = strawberry.field(description="入网日期.")
    plan_name: str = strawberry.field(description="Tariff plan (套餐).")
    plan_fee: Decimal = strawberry.field(description="Monthly fee of the plan, yuan.")
    contract_name: str | None
    contract_end: date | None = strawberry.field(description="合约到期日.")
    status: CustomerStatus
    churned_on: date | None
    churn_reason: str | None
    tier: Tier
    service_level: ServiceLevel
    lifecycle: Lifecycle
    value_quadrant: ValueQuadrant | None = strawberry.field(
        description="Sales-profit quadrant from the last tier recompute."
    )
    avg_spend_3m: Decimal | None = strawberry.field(description="Average monthly spend, 3 months.")
    manager_id: str | None
    team_id: str | None
    interests: list[str]
    tags: list[str]
    preferences: list[str]
    taboos: list[str] = strawberry.field(description="Topics never to raise (禁忌).")
    family_notes: str | None
    important_dates: list[ImportantDate]
    contact_channels: list[str] = strawberry.field(description="Channels the customer accepts.")
    preferred_hours_start: int = strawberry.field(description="Earliest hour to contact (local).")
    preferred_hours_end: int
    do_not_disturb: bool = strawberry.field(description="免打扰: no marketing contact.")
    sms_opt_out: bool = strawberry.field(description="Refuses care SMS (退订).")
    custom: JSON = strawberry.field(description="The operator's own attributes.")
    version: int = strawberry.field(description="Pass back when updating (optimistic locking).")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The manager looking after the customer now.")
    def manager(self, info: Info) -> Manager | None:
        if self.manager_id is None:
            return None
        return later(info.context.loaders.manager.load(self.manager_id))

    @strawberry.field(description="The customer's team.")
    def team(self, info: Info) -> Team | None:
        if self.team_id is None:
            return None
        return later(info.context.loaders.team.load(self.team_id))

    @strawberry.field(description="Open churn warnings (流失预警), highest risk first.")
    def warnings(
        self, info: Info
    ) -> list[Annotated[ChurnWarning, strawberry.lazy("gateway.types.warning")]] | None:
        check(info, "warnings:read")
        loaders = info.context.loaders
        return later(loaders.open_warnings.load(loaders.customer_key(self)))

    @strawberry.field(description="Churn risk 0-100 and the open signals it is made of.")
    def risk_score(
        self, info: Info
    ) -> Annotated[RiskScore, strawberry.lazy("gateway.types.warning")] | None:
        check(info, "warnings:read")
        loaders = info.context.loaders
        return later(loaders.risk.load(loaders.customer_key(self)))

    @strawberry.field(description="Complaints (投诉), newest first, with their SLA state.")
    def complaints(
        self, info: Info
    ) -> list[Annotated[Complaint, strawberry.lazy("gateway.types.complaint")]] | None:
        check(info, "complaints:read")
        loaders = info.context.loaders
        return later(loaders.complaints.load(loaders.customer_key(self)))

    @strawberry.field(description="Care (客户关怀) received: messages and open call tasks.")
    def care_history(
        self, info: Info
    ) -> Annotated[CareHistory, strawberry.lazy("gateway.types.care")] | None:
        from gateway.types.care import CareHistory

        check(info, None)
        return CareHistory(msisdn=self.msisdn)

    @strawberry.field(description="The contact log (接触记录), newest first.")
    async def contact_log(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[ContactEntry] | None:
        check(info, None)
        params: dict[str, Any] = {"limit": info.context.page_size(first)}
        if after is not None:
            params["cursor"] = after
        page = await info.context.service("profile").get(
            info.context.caller, f"/customers/{self.msisdn}/contacts", params=params
        )
        return connection(build_all(ContactEntry, page["items"]), page["next_cursor"])

    @strawberry.field(description="Who managed the customer, and when (维护关系历史).")
    async def manager_history(self, info: Info) -> list[ManagerAssignment] | None:
        check(info, None)
        rows = await info.context.service("profile").get(
            info.context.caller, f"/customers/{self.msisdn}/managers"
        )
        return build_all(ManagerAssignment, rows)
