"""Complaint's contract: the events it publishes and the event types it consumes. Plain
data: other services import this module and nothing else of complaint.

Published: ``complaint.opened`` (warning raises its complaint warning from it; the
contract is unchanged), ``complaint.step_recorded`` for the steps that reach the customer
(acknowledged, solution agreed, closed with satisfaction; profile appends ``contact`` to
its contact log), ``complaint.closed``, ``complaint.sla_breached`` and
``complaint.escalated``.
"""

from __future__ import annotations

from datetime import datetime

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

PRODUCER = "complaint"


class ComplaintOpened(Event):
    """A complaint was registered; every complaint is also a churn signal."""

    event_type = "complaint.opened"
    producer = PRODUCER
    complaint_id: str
    msisdn: str
    category: str
    channel: str
    severity: str
    opened_at: datetime
    repeat_count: int  # complaints by this customer in the last 90 days, this one included
    # Added after the first version of the contract; the default keeps older payloads valid.
    number: str = ""  # the ticket number the customer is told (TS + date + sequence)


class ComplaintStepRecorded(Event):
    """A step of the handling flow that reached the customer (acknowledged, solution
    agreed, closed with satisfaction); internal steps are not contacts and are not sent."""

    event_type = "complaint.step_recorded"
    producer = PRODUCER
    complaint_id: str
    number: str
    step: str
    contact: ContactLogEntry


class ComplaintClosed(Event):
    event_type = "complaint.closed"
    producer = PRODUCER
    complaint_id: str
    number: str
    msisdn: str
    category: str
    satisfaction: int | None
    closed_at: datetime
    handler_id: str | None
    reopened_count: int


class ComplaintSlaBreached(Event):
    """A target (first response, a step, resolution) passed its due time unmet."""

    event_type = "complaint.sla_breached"
    producer = PRODUCER
    complaint_id: str
    number: str
    msisdn: str
    metric: str
    due_at: datetime
    handler_id: str | None
    team_id: str | None


class ComplaintEscalated(Event):
    """Level 1: to the team supervisor at breach; level 2: to the escalation manager."""

    event_type = "complaint.escalated"
    producer = PRODUCER
    complaint_id: str
    number: str
    metric: str
    level: int
    escalated_to: str | None
    due_at: datetime
    team_id: str | None


# Profile's customer events feed ``complaint.customer`` (who the customer is, their tier,
# manager and team: what a new ticket needs).
SATISFACTION_REPLIED = "care.satisfaction_replied"
"""A customer's score replied by SMS to a closed complaint's follow-up: recorded on it."""


class ComplaintErasureConfirmed(Event):
    """Complaint has anonymised its copies of an erased customer (``customer.erased``)."""

    event_type = "complaint.erasure_confirmed"
    producer = PRODUCER
    receipt: ErasureReceipt


CONSUMES: frozenset[str] = frozenset(
    e.event_type
    for e in (
        CustomerCreated,
        CustomerUpdated,
        TierChanged,
        ManagerReassigned,
        CustomerChurned,
        CustomerErased,
    )
) | {SATISFACTION_REPLIED}
