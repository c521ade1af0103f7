"""Profile's contract: the events it publishes, the payload types they embed, and the
event types it consumes. Plain data: other services import this module and nothing else
of profile.

Every customer event carries a full :class:`CustomerSnapshot`, the fields other services
keep in their local read models. A consumer upserts the snapshot and ignores one whose
``version`` is not newer than what it has, so redelivery and reordering across customers
are harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.kit.events import Event

PRODUCER = "profile"


# Values of the customer archive that other services filter and validate by: one
# definition, here in the contract, so care and warning check against profile's own.


class Tier(StrEnum):
    """客户等级 / 会员卡."""

    diamond = "diamond"
    gold = "gold"
    silver = "silver"
    none = "none"


class ServiceLevel(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class Lifecycle(StrEnum):
    acquisition = "acquisition"
    growth = "growth"
    maturity = "maturity"
    decline = "decline"
    churn = "churn"


class CustomerStatus(StrEnum):
    active = "active"
    churned = "churned"


class CustomerSnapshot(BaseModel):
    """What warning and care need to know about a customer, as of ``version``."""

    msisdn: str
    version: int
    name: str
    gender: str
    birthday: date | None
    region: str
    city: str
    time_zone: str
    join_date: date
    status: str
    tier: str
    service_level: str
    lifecycle: str
    manager_id: str | None
    team_id: str | None
    plan_name: str
    plan_fee: str  # decimal yuan as text, e.g. "199.00"
    contract_end: date | None
    balance: str
    sms_opt_out: bool
    do_not_disturb: bool
    preferred_hours_start: int
    preferred_hours_end: int
    taboos: list[str]
    important_dates: list[dict[str, str]]
    custom: dict[str, object] = {}
    # Added after the first version of the contract; defaults keep older payloads valid.
    honorific: str = ""
    contract_name: str | None = None
    churned_on: date | None = None
    churn_reason: str | None = None
    value_quadrant: str | None = None
    contact_channels: list[str] = []
    sms_opt_out_at: datetime | None = None
    tags: list[str] = []
    interests: list[str] = []
    # The name on profile's manager record: a rename publishes ``customer.updated`` with
    # changed=["manager_name"] for each of the manager's customers.
    manager_name: str | None = None
    # The archive's own id: the key partners' reads go by, since they never hold a number.
    customer_id: int | None = None


def newest(snapshots: Iterable[CustomerSnapshot]) -> list[CustomerSnapshot]:
    """The newest of these snapshots of each customer (the later one of equal versions),
    in order of first appearance: what a read model keeps of a batch of events, in one
    statement that may name each customer once."""
    found: dict[str, CustomerSnapshot] = {}
    for snapshot in snapshots:
        held = found.get(snapshot.msisdn)
        if held is None or snapshot.version >= held.version:
            found[snapshot.msisdn] = snapshot
    return list(found.values())


class CustomerCreated(Event):
    event_type = "customer.created"
    producer = PRODUCER
    customer: CustomerSnapshot


class CustomerUpdated(Event):
    event_type = "customer.updated"
    producer = PRODUCER
    changed: list[str]
    customer: CustomerSnapshot


class TierChanged(Event):
    event_type = "customer.tier_changed"
    producer = PRODUCER
    old_tier: str
    new_tier: str
    reason: str
    customer: CustomerSnapshot


class ManagerReassigned(Event):
    event_type = "customer.manager_reassigned"
    producer = PRODUCER
    old_manager_id: str | None
    new_manager_id: str | None
    customer: CustomerSnapshot


class CustomerChurned(Event):
    event_type = "customer.churned"
    producer = PRODUCER
    churned_on: date
    reason: str
    customer: CustomerSnapshot


class CustomerErased(Event):
    """An approved erasure (PIPL): profile has anonymised the archive; every service that
    keeps a copy anonymises it and confirms with an event of
    :data:`ERASURE_RECEIPT_TYPES`. ``msisdn`` is the number being erased, needed to find
    the copies; profile scrubs it from this event once every service has confirmed.
    ``customer`` is the anonymised archive, filed under ``stand_in`` from now on."""

    event_type = "customer.erased"
    producer = PRODUCER
    erasure_id: int
    msisdn: str
    stand_in: str
    customer: CustomerSnapshot


class ErasureReceipt(BaseModel):
    """What one service erased of one customer: how many rows of each kind it anonymised.

    The contract for every consumer of ``customer.erased``: put this model, as a field
    named ``receipt``, in an event of a type listed in :data:`ERASURE_RECEIPT_TYPES`."""

    model_config = ConfigDict(frozen=True)

    erasure_id: int
    service: str
    counts: dict[str, int]


ERASURE_RECEIPT_TYPES: tuple[str, ...] = (
    "warning.erasure_confirmed",
    "care.erasure_confirmed",
    "complaint.erasure_confirmed",
)


# --- contacts other services report -----------------------------------------------------


class ContactChannel(StrEnum):
    call = "call"
    visit = "visit"
    sms = "sms"
    gift = "gift"
    im = "im"
    email = "email"
    app = "app"


class ContactDirection(StrEnum):
    outbound = "outbound"
    inbound = "inbound"


class ContactOutcome(StrEnum):
    reached = "reached"
    delivered = "delivered"
    no_answer = "no_answer"
    refused = "refused"
    failed = "failed"
    other = "other"


class ContactLogEntry(BaseModel):
    """One contact with a customer, as other services report it.

    The contract for every producer: put this model, as a field named ``contact``, in an
    event whose type is listed in :data:`CONTACT_EVENT_TYPES`; the profile service appends
    it to the customer's contact log (once, however often the event is delivered).
    ``channel``, ``direction`` and ``outcome`` take the values of ContactChannel /
    ContactDirection / ContactOutcome above.
    """

    model_config = ConfigDict(frozen=True)

    msisdn: str
    channel: str = Field(description="call, visit, sms, gift, im, email or app")
    direction: str = Field("outbound", description="outbound or inbound")
    at: datetime
    by: str = Field(description="user id of whoever made the contact, or the service name")
    outcome: str = Field(description="reached, delivered, no_answer, refused, failed, other")
    note: str | None = None
    source: str = Field(description="the producing service, e.g. care")
    source_ref: str | None = Field(None, description="the producer's id for this contact")


CONTACT_EVENT_TYPES: tuple[str, ...] = (
    "care.message_delivered",
    "care.task_completed",
    "warning.contact_recorded",
    "complaint.step_recorded",
)

OPT_OUT_REQUESTED = "care.opt_out_requested"
"""A customer replied an opt-out keyword to care's SMS: the archive records the opt-out."""

# What profile's consumers handle: every contact event, opt-outs customers reply, and the
# services' confirmations of an erasure.
CONSUMES: frozenset[str] = (
    frozenset(CONTACT_EVENT_TYPES) | {OPT_OUT_REQUESTED} | frozenset(ERASURE_RECEIPT_TYPES)
)
