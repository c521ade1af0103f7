"""Care's contract: the events it publishes and the event types it consumes. Plain data:
other services import this module and nothing else of care."""

from __future__ import annotations

import uuid

from services.complaint.contract import ComplaintClosed, ComplaintOpened
from services.kit.events import Event
from services.profile.contract import (
    ContactLogEntry,
    CustomerChurned,
    CustomerCreated,
    CustomerUpdated,
    ManagerReassigned,
    TierChanged,
)

PRODUCER = "care"


class MessageDelivered(Event):
    """A care SMS reached the customer's handset; profile appends ``contact`` to the log."""

    event_type = "care.message_delivered"
    producer = PRODUCER
    campaign_id: uuid.UUID
    recipient_id: int
    contact: ContactLogEntry


class TaskCompleted(Event):
    """A manager finished a care task (a call or visit); profile appends ``contact``."""

    event_type = "care.task_completed"
    producer = PRODUCER
    task_id: int
    kind: str
    contact: ContactLogEntry


# Care keeps a copy of profile's customers (and acts on some of their changes), and sends a
# complaint's service messages (acknowledgement, closure, satisfaction follow-up).
CONSUMES: frozenset[str] = frozenset(
    e.event_type
    for e in (CustomerCreated, CustomerUpdated, TierChanged, ManagerReassigned, CustomerChurned)
) | {e.event_type for e in (ComplaintOpened, ComplaintClosed)}
