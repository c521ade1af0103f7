"""Warning's contract: the events it publishes and the event types it consumes. Plain
data: other services import this module and nothing else of warning."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.complaint.contract import ComplaintOpened
from services.kit.events import Event
from services.profile.contract import (
    ContactLogEntry,
    CustomerChurned,
    CustomerCreated,
    CustomerErased,
    CustomerUpdated,
    ErasureReceipt,
    ManagerReassigned,
    TierChanged,
)

PRODUCER = "warning"


class WarningRaised(Event):
    """A new warning for a subscriber (a signal without an open warning fired)."""

    event_type = "warning.raised"
    producer = PRODUCER
    warning_id: int
    msisdn: str
    signal: str
    severity: str
    risk_score: int
    summary: str
    evidence: dict[str, Any]
    rule_version: int
    manager_id: str | None
    team_id: str | None
    due_on: date


class WarningResolved(Event):
    event_type = "warning.resolved"
    producer = PRODUCER
    warning_id: int
    msisdn: str
    signal: str
    outcome: str
    retention_action: str | None
    churn_reason: str | None
    resolved_by: str
    manager_id: str | None


class WarningContactRecorded(Event):
    """A follow-up contact; ``contact`` is profile's contact log entry, so the customer's
    contact log (and the service reach rate) includes warning follow-ups."""

    event_type = "warning.contact_recorded"
    producer = PRODUCER
    warning_id: int
    contact: ContactLogEntry


class WarningErasureConfirmed(Event):
    """Warning has anonymised its copies of an erased customer (``customer.erased``)."""

    event_type = "warning.erasure_confirmed"
    producer = PRODUCER
    receipt: ErasureReceipt


# Profile's customer events feed the local read model ``warning.customer`` (what detection
# and assignment need: tier, manager, plan fee, contract end); ``complaint.opened`` raises a
# complaint warning; ``customer.erased`` anonymises what warning holds of the customer.
CONSUMES: frozenset[str] = frozenset(
    e.event_type
    for e in (
        CustomerCreated,
        CustomerUpdated,
        TierChanged,
        ManagerReassigned,
        CustomerChurned,
        CustomerErased,
        ComplaintOpened,
    )
)
