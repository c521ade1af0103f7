"""Complaint's handlers: profile's customer events (the customer copy a new ticket reads; an
erasure anonymises it and the customer's tickets) and the satisfaction scores customers
reply to care's follow-up SMS."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.care.contract import SatisfactionReplied
from services.complaint import erasure, repository, service
from services.complaint.contract import PRODUCER
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
    await repository.upsert_customers(session, [event.customer for event, _ in events])


@consumer.handles(TierChanged)
@consumer.handles(ManagerReassigned)
@consumer.handles(CustomerChurned)
async def apply_customer_event(
    session: AsyncSession, event: CustomerEvent, envelope: Envelope
) -> None:
    """Every customer event carries the full snapshot: keep it if it is newer."""
    await repository.upsert_customers(session, [event.customer])


@consumer.handles(SatisfactionReplied)
async def satisfaction_replied(
    session: AsyncSession, event: SatisfactionReplied, _: Envelope
) -> None:
    await service.satisfaction_by_reply(session, event)


@consumer.handles(CustomerErased)
async def customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    await erasure.erase_customer(session, event)
