"""Complaint's contract: the events it publishes and the event types it consumes. Plain
data: other services import this module and nothing else of complaint."""

from __future__ import annotations

from datetime import datetime

from services.kit.events import Event

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


CONSUMES: frozenset[str] = frozenset()
