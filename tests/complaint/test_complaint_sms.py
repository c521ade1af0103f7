"""Care sends a complaint's service messages when its events arrive: the acknowledgement
with the ticket number, the closure, and the satisfaction follow-up (回访) later; service
messages are cap-exempt, and a redelivered event sends nothing twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from complaint_support import CUSTOMER, snapshot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care.consumers import consumer as care
from services.complaint.contract import ComplaintClosed, ComplaintOpened
from services.kit.app import Resources
from services.kit.config import Settings
from services.kit.events import Envelope, Event
from services.profile.contract import CustomerCreated


def envelope(event: Event, producer: str, aggregate: str, seq: int) -> Envelope:
    return Envelope(
        id=uuid.uuid4(), seq=seq, type=event.event_type, version=1, producer=producer,
        aggregate_id=aggregate, occurred_at=datetime.now(UTC),
        payload=event.model_dump(mode="json"),
    )  # fmt: skip


async def test_complaint_events_become_service_messages_sent_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    res = Resources.open("care", settings)
    closed_at = datetime(2026, 12, 1, 8, tzinfo=UTC)
    opened = ComplaintOpened(
        complaint_id="7", msisdn=CUSTOMER, category="billing", channel="hotline",
        severity="normal", opened_at=closed_at - timedelta(days=1), repeat_count=1,
        number="TS202611300000007",
    )  # fmt: skip
    closed = ComplaintClosed(
        complaint_id="7", number="TS202611300000007", msisdn=CUSTOMER, category="billing",
        satisfaction=5, closed_at=closed_at, handler_id="m1", reopened_count=0,
    )  # fmt: skip
    try:
        async with res.session() as session:
            await care.receive(
                session,
                [envelope(CustomerCreated(customer=snapshot(CUSTOMER)), "profile", CUSTOMER, 1)],
            )
        batch = [envelope(opened, "complaint", "7", 1), envelope(closed, "complaint", "7", 2)]
        for _ in range(2):  # the second delivery of the same events changes nothing
            async with res.session() as session:
                await care.receive(session, batch)
        async with res.session() as session:  # and the same event sent again by a replay
            results = await care.receive(session, [envelope(opened, "complaint", "7", 3)])
        assert results[0].status == "processed"
    finally:
        await res.close()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.plan_key, c.category, c.template, c.send_at, r.state,"
                    " r.counts_toward_cap FROM care.campaign c"
                    " JOIN care.recipient r ON r.campaign_id = c.id ORDER BY c.plan_key"
                )
            )
        ).all()
    assert [r.plan_key for r in rows] == [
        "complaint:7:0:closed", "complaint:7:0:follow_up", "complaint:7:ack",
    ]  # fmt: skip
    assert all(r.category == "alert" and not r.counts_toward_cap for r in rows)
    ack = rows[2]
    assert "TS202611300000007" in ack.template and "已受理" in ack.template
    follow_up = rows[1]
    assert follow_up.send_at == closed_at + timedelta(hours=24)
    assert "满意" in follow_up.template
