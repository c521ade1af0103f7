"""Events the profile service publishes (and, below, the ones it consumes).

Every customer event carries a full :class:`CustomerSnapshot`, the fields other services
keep in their local read models. A consumer upserts the snapshot and ignores one whose
``version`` is not newer than what it has, so redelivery and reordering across customers
are harmless.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from services.kit.events import Event

PRODUCER = "profile"


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
