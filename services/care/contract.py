"""Care's contract: the events it publishes and the event types it consumes. Plain data:
other services import this module and nothing else of care."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.complaint.contract import ComplaintClosed, ComplaintOpened
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


class OptOutRequested(Event):
    """A customer replied an opt-out keyword (R, TD, 退订...) to our SMS: they want no more.

    Care already sends them nothing; profile records the opt-out in the archive (with a
    contact-log entry saying why) and publishes ``customer.updated`` as for any change.
    ``provider`` and ``reply_id`` (the provider's id of the uplink) name the reply once:
    a re-push by the provider publishes nothing again."""

    event_type = "care.opt_out_requested"
    producer = PRODUCER
    msisdn: str
    keyword: str
    content: str
    received_at: datetime
    provider: str
    reply_id: str


class SatisfactionReplied(Event):
    """A customer answered a complaint's satisfaction follow-up (回访) by SMS: a score 1-5,
    replied within the window after the follow-up reached them. ``complaint_id`` is the
    complaint that follow-up was about; the complaint service records the answer."""

    event_type = "care.satisfaction_replied"
    producer = PRODUCER
    msisdn: str
    complaint_id: str
    satisfaction: int
    content: str
    received_at: datetime
    provider: str
    reply_id: str


class CareErasureConfirmed(Event):
    """Care has anonymised its copies of an erased customer (``customer.erased``)."""

    event_type = "care.erasure_confirmed"
    producer = PRODUCER
    receipt: ErasureReceipt


# Care keeps a copy of profile's customers (and acts on some of their changes, an erasure
# included), and sends a complaint's service messages (acknowledgement, closure,
# satisfaction follow-up).
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
) | {e.event_type for e in (ComplaintOpened, ComplaintClosed)}
