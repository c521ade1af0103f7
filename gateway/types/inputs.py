"""Input objects: list filters and the bodies of mutations. The services check them (one
set of rules, the service's); a field left out is not sent."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import strawberry
from pydantic_core import to_jsonable_python
from strawberry.scalars import JSON

from gateway.types.enums import (
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    CustomerStatus,
    Lifecycle,
    RetentionActionKind,
    ServiceLevel,
    Tier,
    WarningOutcome,
    WarningSignal,
    WarningStatus,
)

UNSET: Any = strawberry.UNSET


def body_of(value: Any) -> Any:
    """The JSON a service takes for an input object: unset fields left out, names as the
    service's (snake_case), dates, enums and decimals as JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: body_of(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not strawberry.UNSET
        }
    if isinstance(value, list):
        return [body_of(v) for v in value]
    return to_jsonable_python(value)


@strawberry.input(description="Filters of the customer list; all given must match.")
class CustomerFilter:
    manager_id: str | None = UNSET
    team_id: str | None = UNSET
    tier: Tier | None = UNSET
    service_level: ServiceLevel | None = UNSET
    lifecycle: Lifecycle | None = UNSET
    region: str | None = strawberry.field(default=UNSET, description="Province, e.g. 广东.")
    status: CustomerStatus | None = UNSET
    birthday_month: int | None = UNSET
    q: str | None = strawberry.field(default=UNSET, description="Part of the name.")
    tag: str | None = UNSET


@strawberry.input(description="Filters of the warning list; all given must match.")
class WarningFilter:
    status: list[WarningStatus] | None = strawberry.field(
        default=UNSET, description="Default: open and in progress."
    )
    signal: WarningSignal | None = UNSET
    msisdn: str | None = UNSET
    manager_id: str | None = UNSET


@strawberry.input(description="Filters of the complaint list; all given must match.")
class ComplaintFilter:
    state: list[str] | None = UNSET
    handler_id: str | None = UNSET
    team_id: str | None = UNSET
    category: str | None = UNSET
    severity: str | None = UNSET
    breached: bool | None = UNSET
    due_before: datetime | None = UNSET
    msisdn: str | None = UNSET


@strawberry.input(description="A contact to record in the customer's contact log.")
class ContactInput:
    channel: ContactChannel
    outcome: ContactOutcome
    direction: ContactDirection | None = UNSET
    at: datetime | None = strawberry.field(default=UNSET, description="Default: now.")
    note: str | None = UNSET
    source_ref: str | None = strawberry.field(
        default=UNSET, description="Your id for it: a repeated one is recorded once."
    )


@strawberry.input(description="Changes to a customer's archive; fields left out stay as they are.")
class CustomerPatch:
    name: str | None = UNSET
    birthday: date | None = UNSET
    city: str | None = UNSET
    service_level: ServiceLevel | None = UNSET
    interests: list[str] | None = UNSET
    tags: list[str] | None = UNSET
    preferences: list[str] | None = UNSET
    taboos: list[str] | None = UNSET
    family_notes: str | None = UNSET
    contact_channels: list[str] | None = UNSET
    preferred_hours_start: int | None = UNSET
    preferred_hours_end: int | None = UNSET
    do_not_disturb: bool | None = UNSET
    sms_opt_out: bool | None = UNSET
    custom: JSON | None = UNSET


@strawberry.input(description="A follow-up contact on a warning (跟进).")
class WarningContactInput:
    channel: ContactChannel
    outcome: ContactOutcome
    direction: ContactDirection | None = UNSET
    at: datetime | None = UNSET
    note: str | None = UNSET


@strawberry.input(description="How a warning ended: retained (with the action) or churned (why).")
class WarningResolution:
    outcome: WarningOutcome
    retention_action: RetentionActionKind | None = UNSET
    churn_reason: str | None = UNSET
    note: str | None = UNSET


@strawberry.input(description="Who a campaign addresses: filters, or an uploaded list.")
class AudienceInput:
    source: str | None = strawberry.field(default=UNSET, description="filter (default) or list.")
    tiers: list[Tier] | None = UNSET
    service_levels: list[ServiceLevel] | None = UNSET
    lifecycles: list[Lifecycle] | None = UNSET
    regions: list[str] | None = UNSET
    manager_ids: list[str] | None = UNSET
    tags: list[str] | None = UNSET
    birthday_month: int | None = UNSET


@strawberry.input(description="A new care campaign (a draft until approved).")
class CampaignInput:
    name: str
    template: str = strawberry.field(description="SMS text, e.g. {honorific}您好，……")
    template_code: str | None = UNSET
    category: str | None = UNSET
    taboo_tags: list[str] | None = UNSET
    occasion: str | None = UNSET
    audience: AudienceInput | None = UNSET
    send_at: datetime | None = UNSET
    local_time: bool | None = UNSET
    control_percent: Decimal | None = UNSET


@strawberry.input(description="What came of a care task's call or visit.")
class CareTaskOutcome:
    outcome: str = strawberry.field(description="reached, no_answer, refused or other.")
    channel: ContactChannel | None = UNSET
    note: str | None = UNSET


@strawberry.input(description="A regional alert SMS (e.g. a typhoon warning).")
class AlertInput:
    name: str
    regions: list[str]
    template: str
    urgent: bool | None = UNSET


@strawberry.input(description="A new complaint (投诉登记).")
class ComplaintInput:
    msisdn: str
    channel: str = strawberry.field(
        description="hotline, store, app, letter, regulator (工信部申诉) or social_media."
    )
    category: str
    description: str
    severity: str | None = strawberry.field(default=UNSET, description="normal, urgent, critical.")
    needs: list[str] | None = strawberry.field(
        default=UNSET,
        description="be_heard, be_respected, be_taken_seriously, fix_now, never_again, "
        "compensation, someone_responsible.",
    )
    handler_id: str | None = strawberry.field(default=UNSET, description="Default: the manager.")


@strawberry.input(description="Step 1, 情绪认同: the emotion heard, the needs recorded.")
class AcknowledgeInput:
    version: int
    emotion: str
    needs: list[str] | None = UNSET
    contact_channel: str | None = UNSET
    notes: str | None = UNSET


@strawberry.input(description="Step 2, 事实澄清: what was found, and whose doing it was.")
class ClarifyInput:
    version: int
    findings: str
    responsibility: str = strawberry.field(description="ours, customer, third_party, unclear.")
    notes: str | None = UNSET


@strawberry.input(description="A point of disagreement (分歧) and how it was resolved.")
class DisagreementInput:
    point: str
    resolution: str


@strawberry.input(description="An action agreed with the customer.")
class ActionInput:
    description: str
    owner: str
    due_on: date


@strawberry.input(description="Step 3, 方案讨论 / 确认共识: what was agreed and the actions.")
class AgreeInput:
    version: int
    agreed: list[str]
    actions: list[ActionInput]
    disagreements: list[DisagreementInput] | None = UNSET
    contact_channel: str | None = UNSET
    notes: str | None = UNSET


@strawberry.input(description="How one agreed action stands.")
class ActionProgressInput:
    action_id: int
    done: bool
    note: str | None = UNSET


@strawberry.input(description="Step 4, 执行跟踪: each action done or not.")
class TrackInput:
    version: int
    actions: list[ActionProgressInput]
    notes: str | None = UNSET


@strawberry.input(description="Closing, with the customer's satisfaction (1-5).")
class CloseInput:
    version: int
    satisfaction: int | None = UNSET
    reason: str | None = strawberry.field(default=UNSET, description="Required for 1 or 2.")
    contact_channel: str | None = UNSET
    notes: str | None = UNSET


@strawberry.input(description="A compensation request (补偿申请), approved by the rules' level.")
class CompensationInput:
    kind: str = strawberry.field(description="bill_credit, data_pack, gift, points or other.")
    amount: Decimal = strawberry.field(description="Yuan, to the fen.")
    reason: str


@strawberry.input(description="A new customer's archive (客户建档).")
class CustomerInput:
    msisdn: str
    name: str
    region: str = strawberry.field(description="Province, e.g. 广东.")
    city: str
    join_date: date
    plan_name: str
    plan_fee: Decimal
    gender: str | None = strawberry.field(default=UNSET, description="male, female, unknown.")
    birthday: date | None = UNSET
    tier: Tier | None = UNSET
    service_level: ServiceLevel | None = UNSET
    lifecycle: Lifecycle | None = UNSET
    manager_id: str | None = UNSET
    contract_name: str | None = UNSET
    contract_end: date | None = UNSET
    tags: list[str] | None = UNSET
    interests: list[str] | None = UNSET
    preferences: list[str] | None = UNSET
    taboos: list[str] | None = UNSET


@strawberry.input(description="A customer team (客户经理团队).")
class TeamInput:
    id: str
    name: str
    region: str
    supervisor_name: str
    supervisor_id: str | None = UNSET


@strawberry.input(description="Changes to a team; fields left out stay.")
class TeamPatch:
    name: str | None = UNSET
    region: str | None = UNSET
    supervisor_id: str | None = UNSET
    supervisor_name: str | None = UNSET


@strawberry.input(description="A customer manager (客户经理).")
class ManagerInput:
    id: str
    name: str
    phone: str
    team_id: str


@strawberry.input(description="Changes to a manager; fields left out stay.")
class ManagerPatch:
    name: str | None = UNSET
    phone: str | None = UNSET
    team_id: str | None = UNSET
