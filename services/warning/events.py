"""Events the warning service publishes, and the ones it consumes.

Consumed: profile's customer events feed the local read model ``warning.customer`` (what
detection and assignment need: tier, manager, plan fee, contract end); complaint's
``complaint.opened`` raises a complaint warning.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint.events import ComplaintOpened
from services.kit.events import Envelope, Event
from services.kit.events.consumer import Consumer
from services.profile.events import (
    ContactLogEntry,
    CustomerChurned,
    CustomerCreated,
    CustomerUpdated,
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


consumer = Consumer(PRODUCER)


CustomerEvent = (
    CustomerCreated | CustomerUpdated | TierChanged | ManagerReassigned | CustomerChurned
)


@consumer.handles(CustomerCreated)
@consumer.handles(CustomerUpdated)
@consumer.handles(TierChanged)
@consumer.handles(ManagerReassigned)
@consumer.handles(CustomerChurned)
async def apply_customer_event(
    session: AsyncSession, event: CustomerEvent, envelope: Envelope
) -> None:
    """Every customer event carries the full snapshot: keep it if it is newer. A churn
    also resolves the customer's open warnings as churned, with the event's reason."""
    from services.warning import service

    await service.apply_snapshots(session, [event.customer])
    if isinstance(event, CustomerChurned):
        await service.resolve_for_churn(
            session, event.customer.msisdn, event.churned_on, event.reason
        )


@consumer.handles(ComplaintOpened)
async def on_complaint_opened(
    session: AsyncSession, event: ComplaintOpened, envelope: Envelope
) -> None:
    from services.warning import service

    await service.raise_complaint_warning(session, event, actor=envelope.actor)
