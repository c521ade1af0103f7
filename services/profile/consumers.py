"""Profile's handlers of other services' events: each reported contact joins the log."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events import Envelope
from services.kit.events.consumer import Consumer
from services.profile import service
from services.profile.contract import CONTACT_EVENT_TYPES, PRODUCER, ContactLogEntry

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
