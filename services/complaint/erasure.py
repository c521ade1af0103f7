"""Personal data in complaints (PIPL): an erased customer's tickets anonymised, and the
retention of complaint texts. Functions take a session and never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint import repository as repo
from services.complaint.config import get_complaint_settings
from services.complaint.contract import PRODUCER, ComplaintErasureConfirmed
from services.kit import clock
from services.kit.erasure import audit_rewrite, erase_copies
from services.kit.events.publish import publish
from services.kit.values import is_stand_in
from services.profile.contract import CustomerErased, ErasureReceipt

RETENTION_BATCH = 500

# Tables keyed by number, with their personal columns (the rest of a ticket's text goes by
# ticket id, in repository.blank_ticket_texts).
ERASED_COLUMNS: dict[str, dict[str, Any]] = {"ticket": {}, "compensation": {}}


async def erase_customer(session: AsyncSession, event: CustomerErased) -> None:
    """Anonymise the erased customer's tickets and customer copy; confirm it to profile. A
    replay of the event, scrubbed once every service confirmed, finds nothing to do."""
    if is_stand_in(event.msisdn):
        return
    tickets = await repo.tickets_of(session, event.msisdn)
    async with audit_rewrite(session):
        counts = await repo.blank_ticket_texts(session, tickets)
    counts |= await erase_copies(session, PRODUCER, event.msisdn, event.stand_in, ERASED_COLUMNS)
    await repo.upsert_customers(session, [event.customer])
    await publish(
        session,
        ComplaintErasureConfirmed(
            receipt=ErasureReceipt(erasure_id=event.erasure_id, service=PRODUCER, counts=counts)
        ),
        aggregate_id=f"erasure:{event.erasure_id}",
    )


async def anonymise_old_texts(session: AsyncSession, now: datetime | None = None) -> int:
    """One batch of tickets closed longer ago than COMPLAINT_TEXT_RETENTION_DAYS whose text
    is anonymised now; how many (the job repeats until fewer than a batch)."""
    days = get_complaint_settings().text_retention_days
    before = (now or clock.now()) - timedelta(days=days)
    tickets = await repo.closed_with_text_before(session, before, RETENTION_BATCH)
    if tickets:
        async with audit_rewrite(session):
            await repo.blank_ticket_texts(session, tickets)
    return len(tickets)
