"""Care (客户关怀): campaigns, the messages customers receive, managers' call tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from gateway.types.common import Info, build, later
from gateway.types.enums import CampaignState, CareMessageState, CareTaskKind, CareTaskStatus


@strawberry.type(description="How a campaign's messages stand (发送统计).")
class CampaignStats:
    recipients: int
    states: JSON = strawberry.field(description="Messages per state (queued, sent, ...).")
    attempted: int = strawberry.field(description="Sent + delivered + failed so far.")
    delivery_rate: float | None = strawberry.field(description="Delivered / attempted.")
    failure_rate: float | None
    audience_delivered_rate: float | None = strawberry.field(
        description="Delivered / eligible recipients: a campaign statistic, not 服务到达率."
    )


@strawberry.type(description="A care campaign (关怀活动): one SMS to an audience.")
class Campaign:
    id: strawberry.ID
    name: str
    kind: str = strawberry.field(description="manual, holiday, birthday, ...")
    category: str
    template: str = strawberry.field(description="The SMS text with {placeholders}.")
    occasion: str | None
    audience: JSON = strawberry.field(description="Who it reaches: a filter or an uploaded list.")
    send_at: datetime | None
    local_time: bool
    urgent: bool
    control_percent: Decimal = strawberry.field(description="Share held out to measure uplift.")
    status: CampaignState
    pause_reason: str | None
    created_by: str
    team_id: str | None = strawberry.field(description="Its team; none: company-wide.")
    approved_by: str | None
    approved_at: datetime | None
    completed_at: datetime | None
    created_at: datetime

    @strawberry.field(description="Delivery statistics (one call to care per campaign).")
    async def stats(self, info: Info) -> CampaignStats | None:
        row = await info.context.service("care").get(
            info.context.caller, f"/campaigns/{self.id}/report"
        )
        return build(CampaignStats, row)


@strawberry.type(description="One care message to a customer, from a campaign or automatic care.")
class CareMessage:
    campaign_id: uuid.UUID
    campaign_name: str
    state: CareMessageState
    text: str | None = strawberry.field(description="As rendered for the customer, once sent.")
    due_at: datetime = strawberry.field(description="When it is (or was) due to go out.")
    sent_at: datetime | None
    delivered_at: datetime | None


@strawberry.type(description="A number of an upload that is not a mobile number, and why.")
class ListEntryProblem:
    position: int = strawberry.field(description="1-based position in the upload.")
    value: str
    reason: str


@strawberry.type(description="What an audience list upload did.")
class AudienceListAdded:
    added: int = strawberry.field(description="Numbers newly on the list.")
    duplicates: list[str]
    not_customers: list[str] = strawberry.field(
        description="Added, but not a customer on file: suppressed at send time."
    )
    rejected: list[ListEntryProblem]
    list_size: int


@strawberry.type(description="A call or visit a manager is to make (关怀任务).")
class CareTask:
    id: strawberry.ID
    msisdn: str
    manager_id: str | None
    kind: CareTaskKind
    period: str
    due_on: date
    status: CareTaskStatus
    note: str | None
    completed_at: datetime | None
    outcome: str | None


@strawberry.type(description="The care a customer has received and is due.")
class CareHistory:
    msisdn: strawberry.Private[str]

    @strawberry.field(description="Care messages, newest first.")
    def messages(self, info: Info) -> list[CareMessage] | None:
        return later(info.context.loaders.care_messages.load(self.msisdn))

    @strawberry.field(description="Open call and visit tasks.")
    def tasks(self, info: Info) -> list[CareTask] | None:
        return later(info.context.loaders.care_tasks.load(self.msisdn))
