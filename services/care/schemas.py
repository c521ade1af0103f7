"""Request and response models of the care API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.care.calendar_cn import FESTIVALS
from services.care.models import (
    CampaignKind,
    CampaignStatus,
    Category,
    RecipientState,
    RuleKind,
    TaskKind,
    TaskStatus,
)
from services.kit.values import Region
from services.profile.contract import ContactChannel, Lifecycle, ServiceLevel, Tier


class Audience(BaseModel):
    """Who a campaign addresses: filters (all given ones must match; none given: every
    active customer) or, with ``source: "list"``, only an uploaded list. The two do not
    mix: a list campaign takes no filters, and a filter campaign refuses a list upload.
    Values are checked against profile's own (tiers, service levels, lifecycle stages,
    provinces)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("filter", pattern="^(filter|list)$")
    tiers: list[Tier] = []
    service_levels: list[ServiceLevel] = []
    lifecycles: list[Lifecycle] = []
    regions: list[Region] = Field([], description="provinces, e.g. 广东 or 广东省")
    manager_ids: list[str] = []
    tags: list[str] = []
    birthday_month: int | None = Field(None, ge=1, le=12)

    @model_validator(mode="after")
    def _one_source(self) -> Audience:
        if self.source == "list" and self.model_dump(exclude_defaults=True, exclude={"source"}):
            raise ValueError("名单受众（source=list）不能同时带筛选条件")
        return self


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    template: str = Field(min_length=1, max_length=500)
    template_code: str | None = Field(None, max_length=50)
    category: Category = Category.care
    taboo_tags: list[str] = []
    occasion: str | None = Field(None, max_length=100)
    audience: Audience = Audience()
    send_at: datetime | None = None
    local_time: bool = False
    control_percent: Decimal = Field(
        Decimal(0),
        ge=0,
        le=50,
        description="share of the audience held out (rounded down) to measure the uplift",
    )

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("send_at 须带时区，如 2026-12-01T10:00:00+08:00")
        return value


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    template: str | None = Field(None, min_length=1, max_length=500)
    template_code: str | None = Field(None, max_length=50)
    category: Category | None = None
    taboo_tags: list[str] | None = None
    occasion: str | None = Field(None, max_length=100)
    audience: Audience | None = None
    send_at: datetime | None = None
    local_time: bool | None = None
    control_percent: Decimal | None = Field(None, ge=0, le=50)


class CampaignRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: CampaignKind
    category: Category
    template: str
    template_code: str | None
    taboo_tags: list[str]
    occasion: str | None
    audience: dict[str, Any]
    send_at: datetime | None
    local_time: bool
    urgent: bool
    control_percent: Decimal
    status: CampaignStatus
    pause_reason: str | None
    created_by: str
    team_id: str | None = Field(
        description="the team whose customers it reaches; none: company-wide"
    )
    approved_by: str | None
    approved_at: datetime | None
    heartbeat_at: datetime | None
    """When a dispatch job last took a batch: how on-call operators see a stuck campaign."""
    completed_at: datetime | None
    created_at: datetime


class AudienceList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    msisdns: list[str] = Field(
        min_length=1,
        max_length=100_000,
        description="mobile numbers in any usual form (+86 155-7211-4608 is 15572114608)",
    )


class ListEntryError(BaseModel):
    """An entry that was not added, like a bad row of profile's import."""

    position: int = Field(description="1-based position in ``msisdns``")
    value: str
    reason: str


class AudienceListResult(BaseModel):
    added: int = Field(description="numbers newly on the list")
    duplicates: list[str] = Field(
        description="numbers given twice in the upload or already on the list (kept once)"
    )
    not_customers: list[str] = Field(
        description="added, but not (yet) a customer on file: suppressed at send time "
        "unless they become one; remove them with DELETE if they were a mistake"
    )
    rejected: list[ListEntryError] = Field(description="entries that are not mobile numbers")
    list_size: int = Field(description="numbers on the list after the upload")


class AudienceListRemoval(BaseModel):
    removed: int
    list_size: int


class ReplyReceipt(BaseModel):
    """What one push of customers' replies did."""

    received: int = 0
    """Replies recorded for the first time."""
    opt_outs: int = 0
    """Of those, opt-out keywords: nothing more is sent to these numbers."""
    satisfaction: int = 0
    """Of those, scores 1-5 answering a complaint's satisfaction follow-up."""
    duplicates: int = 0
    """Replies recorded before (the provider pushed them again): nothing changed."""
    ignored: int = 0
    """From a number that is not a mainland mobile."""


class SmsReplyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider: str
    msisdn: str
    content: str
    opt_out_keyword: str | None = Field(
        description="the opt-out keyword the reply is (normalised), or null"
    )
    sent_at: datetime | None
    received_at: datetime
    settled_at: datetime | None = Field(
        description="when the customer copy first showed profile's opt-out; until then the "
        "reply alone keeps every SMS from the number"
    )


class SampleRendering(BaseModel):
    msisdn: str
    text: str | None = Field(
        description="the text as the customer would get it, the opt-out hint (拒收请回复R) "
        "appended where the category needs one and the template gives none"
    )
    error: str | None = None
    length: int | None = Field(
        None, description="characters on the handset, the provider's 【signature】 included"
    )
    segments: int | None = Field(
        None, description="billed messages: one up to 70 characters, else parts of 67"
    )


class Preview(BaseModel):
    audience: int
    control_group: int = Field(
        description="how many will be held out on approval: control_percent of the audience, "
        "rounded down (4 recipients at 50% hold out 2, at 10% none)"
    )
    suppressed: dict[str, int]
    """Reason -> how many would be suppressed if approved now. Every rule is checked again
    when each message goes out, so the frequency cap in particular may differ by then."""
    will_send: int
    """Messages that would go out, including those held for quiet hours."""
    held_for_quiet_hours: int
    """Of ``will_send``: due inside quiet hours in the recipient's time zone, so sent when
    quiet hours end."""
    samples: list[SampleRendering]
    render_errors: int
    placeholders: list[str]
    warnings: list[str] = Field(
        [], description="how the samples read badly, e.g. a surname said twice (马东马先生)"
    )


class DispatchRow(BaseModel):
    """One campaign that is meant to be sending (approved, dispatching or paused)."""

    campaign_id: uuid.UUID
    name: str
    status: CampaignStatus
    pause_reason: str | None
    last_progress_at: datetime | None
    """When a dispatch job last took a batch of this campaign."""
    due: int
    """Queued and due now: what the jobs should be sending."""
    later: int
    """Queued or held for later (a schedule, quiet hours, a retry)."""
    sending: int
    unsettled: int
    """Of ``sending``: the worker's lease ran out; the re-driver is asking the provider."""
    sent: int
    failed: int
    stalled: bool
    """Dispatching with work due, but no batch taken (nor status change) for twice
    ``CARE_STALL_SECONDS``: are the workers down?"""


class DispatchHealth(BaseModel):
    provider: str
    rate_per_second: float
    campaigns: list[DispatchRow]


class CampaignReport(BaseModel):
    campaign_id: uuid.UUID
    status: CampaignStatus
    recipients: int
    states: dict[str, int]
    suppressed: dict[str, int]
    attempted: int = Field(
        description="messages handed to the provider with a known result so far: "
        "sent + delivered + failed (not suppressed, control, queued or still sending)"
    )
    delivery_rate: float | None = Field(
        description="delivered / attempted: the share of messages we tried to send that the "
        "operator confirmed delivered (a sent message without a receipt yet counts as not "
        "delivered); null before any attempt"
    )
    failure_rate: float | None = Field(
        description="failed / attempted: rejected by the provider or undeliverable"
    )
    audience_delivered_rate: float | None = Field(
        description="delivered / eligible recipients (everyone but the control group): how "
        "much of the campaign's audience the message reached. A campaign statistic, not "
        "the service reach rate (服务到达率, profile's GET /reports/reach)"
    )


class RecipientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    msisdn: str
    state: RecipientState
    due_at: datetime
    attempts: int
    text: str | None
    reason: str | None
    error_code: str | None
    error_message: str | None
    provider_message_id: str | None
    sent_at: datetime | None
    delivered_at: datetime | None


class MessageRead(BaseModel):
    """One care message to a customer: a recipient row of a campaign (automatic care
    included), planned, sent or not sent as ``state`` says."""

    id: int = Field(description="the recipient row")
    campaign_id: uuid.UUID
    campaign_name: str
    msisdn: str
    state: RecipientState = Field(
        description="queued / held / sending: planned; sent, delivered: sent (delivered: "
        "the operator confirmed it); failed, suppressed, control, cancelled: not sent"
    )
    text: str | None = Field(description="the text as rendered for this customer (once sent)")
    due_at: datetime = Field(description="when it is (or was) due to go out")
    sent_at: datetime | None
    delivered_at: datetime | None


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    regions: list[Region] = Field(min_length=1, description="provinces, e.g. 广东")
    template: str = Field(min_length=1, max_length=500)
    urgent: bool = Field(
        False,
        description="Send at once even in quiet hours (typhoon, earthquake); otherwise "
        "customers inside quiet hours get it when they end. Alerts always pass "
        "do-not-disturb, never an SMS opt-out.",
    )


class _RuleParams(BaseModel):
    """Parameters every rule kind takes; each kind adds its own. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    hour: int = Field(10, ge=0, le=23, description="local hour the messages go out at")


class _DayOfMonthParams(_RuleParams):
    day_of_month: int = Field(1, ge=1, le=28, description="the day of the month it runs on")


class NetworkAnniversaryParams(_RuleParams):
    years: list[int] = Field([1, 3, 5, 10], min_length=1, max_length=20)

    @field_validator("years")
    @classmethod
    def _plausible(cls, years: list[int]) -> list[int]:
        if any(not 1 <= y <= 60 for y in years):
            raise ValueError("network ages are whole years from 1 to 60")
        return years


class HolidayParams(_RuleParams):
    festival: Literal[tuple(FESTIVALS)]  # type: ignore[valid-type]
    days_before: int = Field(0, ge=0, le=30)


class LowBalanceParams(_RuleParams):
    days_before: int = Field(3, ge=0, le=30, description="days before a long holiday")
    min_days: int = Field(3, ge=2, le=15, description="how long a holiday counts as long")
    balance_below: Decimal = Field(Decimal("30"), ge=0, le=10000)


RULE_PARAMS: dict[RuleKind, type[_RuleParams]] = {
    RuleKind.birthday: _RuleParams,
    RuleKind.personal_anniversary: _RuleParams,
    RuleKind.network_anniversary: NetworkAnniversaryParams,
    RuleKind.holiday: HolidayParams,
    RuleKind.low_balance: LowBalanceParams,
    RuleKind.vip_welcome: _RuleParams,
    RuleKind.level_a_call: _DayOfMonthParams,
    RuleKind.level_b_sms: _DayOfMonthParams,
}
"""What each rule kind's ``params`` may hold, checked when a rule is written."""


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    name: str = Field(min_length=1, max_length=200)
    category: Category = Category.greeting
    template: str = Field(min_length=1, max_length=500)
    taboo_tags: list[str] = []
    params: dict[str, Any] = {}
    active: bool = True


class RuleUpdate(BaseModel):
    """Fields to change; the kind of a rule is fixed. Takes effect from the next planning:
    campaigns already planned from the rule keep what they were planned with."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    category: Category | None = None
    template: str | None = Field(None, min_length=1, max_length=500)
    taboo_tags: list[str] | None = None
    params: dict[str, Any] | None = None
    active: bool | None = None


class RuleRead(RuleCreate):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: uuid.UUID


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    msisdn: str
    manager_id: str | None
    kind: TaskKind
    period: str
    due_on: date
    status: TaskStatus
    note: str | None
    completed_at: datetime | None
    completed_by: str | None
    channel: ContactChannel | None
    outcome: str | None
    outcome_note: str | None


class TaskComplete(BaseModel):
    """What came of the call or visit; it goes into the customer's contact log."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["reached", "no_answer", "refused", "other"]
    channel: ContactChannel = ContactChannel.call
    note: str | None = Field(None, max_length=500)


class PlanResult(BaseModel):
    """What planning a day did; planning it again creates nothing and reports so."""

    day: date
    campaigns_created: int
    campaigns_already_planned: int = Field(
        description="campaigns of this day that existed before this call (a repeat)"
    )
    recipients_added: int = Field(description="recipients added by this call")
    tasks_created: int
    failed_rules: list[str] = Field(
        [], description="rules that could not be planned (logged); the others were"
    )
