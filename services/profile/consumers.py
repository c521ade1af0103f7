"""Profile's handlers of other services' events: each reported contact joins the log, an
opt-out a customer replied to care's SMS is recorded in the archive, and each service's
confirmation of an erasure is recorded on it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.care.contract import OptOutRequested
from services.kit.events import Envelope
from services.kit.events.consumer import Consumer
from services.profile import erasure, service
from services.profile.contract import (
    CONTACT_EVENT_TYPES,
    ERASURE_RECEIPT_TYPES,
    PRODUCER,
    ContactLogEntry,
    ErasureReceipt,
)

logger = logging.getLogger("keepwell.profile.consumers")

consumer = Consumer(PRODUCER)


async def record_contact(session: AsyncSession, payload: Any, envelope: Envelope) -> None:
    entry = ContactLogEntry.model_validate(payload["contact"])
    if not await service.record_reported_contact(session, entry):
        # Not one of our customers (or no longer on file): nothing to attach it to, and
        # failing would hold up every later event of this producer's aggregate.
        logger.warning(
            "contact from %s (%s) for unknown customer ignored", envelope.producer, envelope.type
        )


for _type in CONTACT_EVENT_TYPES:
    consumer.handles_type(_type)(record_contact)


@consumer.handles(OptOutRequested)
async def opt_out_requested(session: AsyncSession, event: OptOutRequested, _: Envelope) -> None:
    recorded = await service.record_opt_out_reply(
        session,
        msisdn=event.msisdn,
        keyword=event.keyword,
        content=event.content,
        received_at=event.received_at,
        reply_ref=f"reply:{event.provider}:{event.reply_id}",
    )
    if not recorded:
        # Care sends the number nothing either way; failing would hold up later events.
        logger.warning("opt-out reply from a number not on file ignored")


async def erasure_confirmed(session: AsyncSession, payload: Any, envelope: Envelope) -> None:
    await erasure.record_receipt(session, ErasureReceipt.model_validate(payload["receipt"]))


for _type in ERASURE_RECEIPT_TYPES:
    consumer.handles_type(_type)(erasure_confirmed)
