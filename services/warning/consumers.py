"""Warning's handlers of other services' events: profile's customer events keep the
customer copy (an erasure anonymises it and what hangs under the customer);
``complaint.opened`` raises a complaint warning."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint.contract import ComplaintOpened
from services.kit.events import Envelope
from services.kit.events.consumer import Consumer
from services.profile.contract import (
    CustomerChurned,
    CustomerCreated,
    CustomerErased,
    CustomerUpdated,
    ManagerReassigned,
    TierChanged,
)
from services.warning import service
from services.warning.contract import PRODUCER

consumer = Consumer(PRODUCER)


CustomerEvent = (
    CustomerCreated | CustomerUpdated | TierChanged | ManagerReassigned | CustomerChurned
)


@consumer.handles_many(CustomerCreated)
@consumer.handles_many(CustomerUpdated)
async def apply_customer_events(
    session: AsyncSession, events: Sequence[tuple[CustomerEvent, Envelope]]
) -> None:
    """The bulk of a nightly feed, a run of events at a time: keep each newer snapshot."""
    await service.apply_snapshots(session, [event.customer for event, _ in events])


@consumer.handles(TierChanged)
@consumer.handles(ManagerReassigned)
@consumer.handles(CustomerChurned)
async def apply_customer_event(
    session: AsyncSession, event: CustomerEvent, envelope: Envelope
) -> None:
    """Every customer event carries the full snapshot: keep it if it is newer. A churn
    also resolves the customer's open warnings as churned, with the event's reason."""
    await service.apply_snapshots(session, [event.customer])
    if isinstance(event, CustomerChurned):
        await service.resolve_for_churn(
            session, event.customer.msisdn, event.churned_on, event.reason
        )


@consumer.handles(ComplaintOpened)
async def on_complaint_opened(
    session: AsyncSession, event: ComplaintOpened, envelope: Envelope
) -> None:
    await service.raise_complaint_warning(session, event, actor=envelope.actor)


@consumer.handles(CustomerErased)
async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    await service.erase_customer(session, event)
