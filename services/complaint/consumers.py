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
@consumer.handles_many(TierChanged)
@consumer.handles_many(ManagerReassigned)
@consumer.handles_many(CustomerChurned)
async def apply_customer_events(
    session: AsyncSession, events: Sequence[tuple[CustomerEvent, Envelope]]
) -> None:
    """Every customer event carries the full snapshot: keep each newer one, a run of events
    at a time (the bulk of a nightly feed is one long run of customer.created)."""
    await repository.upsert_customers(session, [event.customer for event, _ in events])


@consumer.handles(SatisfactionReplied)
async def satisfaction_replied(
    session: AsyncSession, event: SatisfactionReplied, _: Envelope
) -> None:
    await service.satisfaction_by_reply(session, event)


@consumer.handles(CustomerErased)
async def customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    await erasure.erase_customer(session, event)
