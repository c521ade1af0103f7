"""Request and response models of the profile service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.profile.contract import ContactChannel, ContactDirection, ContactOutcome
from services.profile.models import (
    CustomerStatus,
    ErasureStatus,
    Gender,
    Lifecycle,
    ServiceLevel,
    Tier,
    ValueQuadrant,
)
from services.profile.validation import (
    Hour,
    Msisdn,
    PastDate,
    PastInstant,
    Region,
    Text,
    TimeZone,
)

Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
Fee = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Label = Annotated[Text, Field(max_length=50)]
Labels = Annotated[list[Label], Field(max_length=50)]


class ImportantDate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label
    date: date


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FieldError(BaseModel):
    """A rule between fields broken by one of them."""

    field: str
    message: str


class CustomerFields(_Strict):
    """Every archive field a person or a feed may set; all optional (a partial update)."""

    # Fields that may be omitted but never set to null.
    NOT_NULL: ClassVar[frozenset[str]] = frozenset(
        {
            "name", "gender", "region", "city", "time_zone", "join_date", "plan_name",
            "plan_fee", "balance", "status", "tier", "service_level", "lifecycle",
            "interests", "tags", "preferences", "taboos", "important_dates", "contact_channels",
            "preferred_hours_start", "preferred_hours_end", "do_not_disturb", "sms_opt_out",
            "custom",
        }
    )  # fmt: skip

    name: Annotated[Text, Field(max_length=50)] | None = None
    gender: Gender | None = None
    birthday: PastDate | None = None
    region: Region | None = None
    city: Annotated[Text, Field(max_length=50)] | None = None
    time_zone: TimeZone | None = None
    join_date: PastDate | None = None
    plan_name: Annotated[Text, Field(max_length=100)] | None = None
    plan_fee: Fee | None = None
    contract_name: Annotated[Text, Field(max_length=100)] | None = None
    contract_end: date | None = None
    balance: Money | None = None
    status: CustomerStatus | None = None
    churned_on: PastDate | None = None
    churn_reason: Annotated[Text, Field(max_length=200)] | None = None
    tier: Tier | None = None
    service_level: ServiceLevel | None = None
    lifecycle: Lifecycle | None = None
    manager_id: Annotated[Text, Field(max_length=32)] | None = None
    interests: Labels | None = None
    tags: Labels | None = None
    preferences: Labels | None = None
    taboos: Labels | None = None
    family_notes: Annotated[str, Field(max_length=2000)] | None = None
    important_dates: Annotated[list[ImportantDate], Field(max_length=20)] | None = None
    contact_channels: Annotated[list[ContactChannel], Field(max_length=7)] | None = None
    preferred_hours_start: Hour | None = None
    preferred_hours_end: Hour | None = None
    do_not_disturb: bool | None = None
    sms_opt_out: bool | None = None
    sms_opt_out_at: datetime | None = None
    custom: dict[str, Any] | None = None

    def rule_broken(self) -> FieldError | None:
        """The first rule between fields that this input breaks (None when all hold).

        Checked by the service and the importer rather than by pydantic, so that the error
        names the offending field instead of the whole body."""
        given = self.model_fields_set
        for name in sorted(given & self.NOT_NULL):
            if getattr(self, name) is None:
                return FieldError(field=name, message="可以不填，但不能为 null")
        start, end = self.preferred_hours_start, self.preferred_hours_end
        if start is not None and end is not None and start >= end:
            return FieldError(field="preferred_hours_end", message="须晚于 preferred_hours_start")
        if self.status is CustomerStatus.churned and not self.churn_reason:
            return FieldError(field="churn_reason", message="status 为 churned 时必填")
        if self.sms_opt_out_at is not None and self.sms_opt_out is False:
            return FieldError(field="sms_opt_out_at", message="仅在 sms_opt_out 为 true 时填写")
        return None

    def given(self) -> dict[str, Any]:
        """The fields the caller set, as Python values (lists of plain dicts and strings)."""
        values = self.model_dump(exclude_unset=True, mode="python")
        if "important_dates" in values and values["important_dates"] is not None:
            values["important_dates"] = [
                {"label": d["label"], "date": d["date"].isoformat()}
                for d in values["important_dates"]
            ]
        if values.get("contact_channels") is not None:
            values["contact_channels"] = [str(c) for c in values["contact_channels"]]
        return values


# Required to create a customer (by API or import); everything else has a default.
REQUIRED_FOR_NEW: tuple[str, ...] = (
    "name",
    "region",
    "city",
    "join_date",
    "plan_name",
    "plan_fee",
)


class CustomerCreate(CustomerFields):
    msisdn: Msisdn
    # The fields of REQUIRED_FOR_NEW, without the None of a partial update.
    name: Annotated[Text, Field(max_length=50)]
    region: Region
    city: Annotated[Text, Field(max_length=50)]
    join_date: PastDate
    plan_name: Annotated[Text, Field(max_length=100)]
    plan_fee: Fee


class CustomerUpdate(CustomerFields):
    """A partial update; ``version`` (or an If-Match header) is the version you read."""

    version: int | None = Field(None, ge=1)


class ImportRow(CustomerFields):
    """One row of a bulk import: the number plus whichever fields the feed carries."""

    msisdn: Msisdn


class CustomerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    msisdn: str
    name: str
    gender: Gender
    honorific: str
    birthday: date | None
    region: str
    city: str
    time_zone: str
    join_date: date
    plan_name: str
    plan_fee: Decimal
    contract_name: str | None
    contract_end: date | None
    balance: Decimal
    status: CustomerStatus
    churned_on: date | None
    churn_reason: str | None
    tier: Tier
    service_level: ServiceLevel
    lifecycle: Lifecycle
    rfm_recency: int | None
    rfm_frequency: int | None
    rfm_monetary: int | None
    avg_spend_3m: Decimal | None
    value_quadrant: ValueQuadrant | None
    value_computed_on: date | None
    manager_id: str | None
    manager_name: str | None
    team_id: str | None
    interests: list[str]
    tags: list[str]
    preferences: list[str]
    taboos: list[str]
    family_notes: str | None
    important_dates: list[dict[str, str]]
    contact_channels: list[str]
    preferred_hours_start: int
    preferred_hours_end: int
    do_not_disturb: bool
    sms_opt_out: bool
    sms_opt_out_at: datetime | None
    custom: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class AssignmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    manager_id: str
    started_at: datetime
    ended_at: datetime | None
    assigned_by: str
    reason: str | None


class ContactCreate(_Strict):
    channel: ContactChannel
    direction: ContactDirection = ContactDirection.outbound
    at: PastInstant | None = Field(
        None, description="When it happened (at most 5 minutes ahead of now); defaults to now"
    )
    outcome: ContactOutcome
    note: Annotated[str, Field(max_length=2000)] | None = None
    source_ref: Annotated[str, Field(max_length=100)] | None = Field(
        None, description="Your id for this contact: a repeated one is recorded once"
    )

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("须带时区，如 2026-12-01T10:00:00+08:00")
        return value


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    msisdn: str
    channel: ContactChannel
    direction: ContactDirection
    at: datetime
    by: str
    outcome: ContactOutcome
    note: str | None
    source: str
    source_ref: str | None


class ContactPage(BaseModel):
    items: list[ContactRead]
    next_cursor: str | None


class ReachGroup(BaseModel):
    group: str
    customers: int
    reached: int
    rate: float = Field(description="reached / customers; 0 when the group has no customers")


class ReachReport(BaseModel):
    period_from: date
    period_to: date
    group_by: Literal["manager", "team", "tier"]
    groups: list[ReachGroup]
    total: ReachGroup


class SnapshotRead(BaseModel):
    """One snapshot (拍照) of the VIP base."""

    model_config = ConfigDict(from_attributes=True)

    day: date = Field(description="The Beijing business date it stands for")
    taken_at: datetime = Field(description="When the archive was read")
    taken_by: str
    customers: int = Field(description="VIP customers recorded (every status)")


class SnapshotTaken(SnapshotRead):
    created: bool = Field(description="False when the day was taken already (nothing changed)")


class RetentionRow(BaseModel):
    team_id: str = Field(description="The team at the base snapshot; `(unassigned)` for none")
    manager_id: str | None = Field(
        None, description="Per-manager rows only: the manager at the base snapshot"
    )
    base: int = Field(description="Active VIPs in the base snapshot")
    retained: int = Field(description="Of those, still active VIPs at `to`")
    lost: int
    rate: float = Field(description="retained / base; 0 when base is 0")


class RetentionReport(BaseModel):
    period_from: date
    period_to: date
    base_snapshot: date = Field(
        description="The snapshot the base comes from (on or before `from`)"
    )
    measured_at: Literal["snapshot", "live"] = Field(
        description="`snapshot`: the snapshot taken at `to`; `live`: the archive now"
    )
    team_id: str | None
    base: int
    retained: int
    lost: int
    rate: float = Field(description="retained / base; 0 when base is 0")
    teams: list[RetentionRow]
    managers: list[RetentionRow]


class AuditReadRow(BaseModel):
    """Personal fields of one customer served unmasked to one caller in one request."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    request_id: str | None = Field(description="The request's X-Request-ID")
    user_id: str = Field(description="Who read: the token's subject")
    role: str
    caller: str | None = Field(description="An internal caller (`rebuild`); null for a person")
    action: str = Field(description="The route that served it, e.g. `GET /customers`")
    customer_id: int
    msisdn: str
    fields: list[str] = Field(
        description="`msisdn`, `family_notes`, `custom.<name>` (attributes marked personal)"
    )


class AuditReadPage(BaseModel):
    items: list[AuditReadRow]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )


class TeamCreate(_Strict):
    id: Annotated[Text, Field(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    name: Annotated[Text, Field(max_length=100)]
    region: Region
    supervisor_id: Annotated[Text, Field(max_length=32)] | None = None
    supervisor_name: Annotated[Text, Field(max_length=50)]


class TeamUpdate(_Strict):
    name: Annotated[Text, Field(max_length=100)] | None = None
    region: Region | None = None
    supervisor_id: Annotated[Text, Field(max_length=32)] | None = None
    supervisor_name: Annotated[Text, Field(max_length=50)] | None = None


class TeamRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    region: str
    supervisor_id: str | None
    supervisor_name: str


class ManagerCreate(_Strict):
    id: Annotated[Text, Field(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    name: Annotated[Text, Field(max_length=50)]
    phone: Msisdn = Field(
        description="a mobile number, checked like a customer's; kept as 11 digits"
    )
    team_id: Annotated[Text, Field(max_length=32)]


class ManagerUpdate(_Strict):
    name: Annotated[Text, Field(max_length=50)] | None = None
    phone: Msisdn | None = None
    team_id: Annotated[Text, Field(max_length=32)] | None = None


class ManagerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    phone: str
    team_id: str
    active: bool
    left_on: date | None


class ManagerLeave(_Strict):
    """A manager leaves: their customers go to ``reassign_to`` (or stay unassigned)."""

    reassign_to: Annotated[Text, Field(max_length=32)] | None = None
    reason: Annotated[Text, Field(max_length=200)] = "客户经理离职"


class ImportIssue(BaseModel):
    line: int
    column: str | None
    reason: str


class ImportSummary(BaseModel):
    rows: int = Field(description="data rows read")
    inserted: int
    updated: int
    unchanged: int
    superseded: int = Field(description="rows overridden by a later row for the same number")
    rejected: int
    errors: list[ImportIssue]
    errors_truncated: bool = False


class RecomputeSummary(BaseModel):
    as_of: date
    window: list[date]
    evaluated: int
    tier_changes: int
    quadrant_changes: int
    skipped_reason: str | None = None


class BillingEntry(_Strict):
    msisdn: Msisdn
    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
    spend: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class BillingResult(BaseModel):
    loaded: int
    unknown_customers: int


class ErasureCreate(_Strict):
    """Ask for one customer's personal data to be erased (PIPL); a second person approves."""

    msisdn: Msisdn | None = Field(None, description="The customer's number, or give customer_id")
    customer_id: int | None = Field(None, ge=1)
    reason: str = Field(min_length=1, max_length=500, description="Why, e.g. the request's ref")


class ErasureReceiptRead(BaseModel):
    at: datetime
    counts: dict[str, int] = Field(description="Rows anonymised, by kind")


class ErasureRead(BaseModel):
    """The record of an erasure: who asked and approved, and what each service confirmed.
    It never holds the customer's personal values."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    stand_in: str | None = Field(description="What the customer's number became, once approved")
    status: ErasureStatus
    reason: str
    requested_by: str
    requested_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    completed_at: datetime | None
    receipts: dict[str, ErasureReceiptRead] = Field(
        description="By service: profile at approval, the others as they confirm"
    )
    waiting_for: list[str] = Field(description="Services that have not confirmed yet")
