"""The gateway as an event subscriber: ``POST /events`` from the services' relays.

Each event goes into the gateway's inbox (schema ``gateway``) in one transaction, as into a
service's, with the notices it makes for the team's staff channels (gateway/channels), so a
redelivered event does nothing a second time; once that transaction has committed, the
events applied are published to every gateway process (gateway/live/hub.py).
A process killed between the commit and the publication loses that event's live update
(clients still see it in their queries); it is never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels import queue_notice
from gateway.live.contract import CONSUMES
from gateway.live.hub import Hub, LiveEvent
from gateway.live.notices import notice_of
from services.kit.auth import Principal, require_caller
from services.kit.config import Settings
from services.kit.db import session_scope
from services.kit.events.consumer import BatchResult, Consumer, EventBatch
from services.kit.events.model import Envelope
from services.kit.events.prune import prune
from services.kit.keys import Signer

logger = logging.getLogger("keepwell.gateway.live")

consumer = Consumer("gateway")

_LIVE = "live_events"
_NOTICES = "notices_queued"


def _record(session: AsyncSession, payload: dict[str, Any], envelope: Envelope) -> None:
    """Keep the event for publication after commit; keyed by id, since a batch that fails
    is applied again one event at a time."""
    session.info.setdefault(_LIVE, {})[str(envelope.id)] = LiveEvent(
        id=str(envelope.id),
        type=envelope.type,
        occurred_at=envelope.occurred_at.isoformat(),
        payload=payload,
    )


for _type in CONSUMES:

    @consumer.handles_type(_type)
    async def _live(session: AsyncSession, payload: Any, envelope: Envelope) -> None:
        _record(session, payload, envelope)
        # The team's staff channels, in the inbox's transaction: queued once, never lost.
        notice = notice_of(envelope.id, envelope.type, payload)
        if notice is not None and await queue_notice(session, notice):
            session.info[_NOTICES] = True


def events_router() -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.post("/events", summary="Receive events from the relay (internal)")
    async def receive(
        batch: EventBatch,
        request: Request,
        _: Annotated[Principal, Depends(require_caller(Signer.relay))],
    ) -> BatchResult:
        async with session_scope(request.app.state.clients.sessionmaker) as session:
            results = await consumer.receive(session, batch.events)
            kept: dict[str, LiveEvent] = session.info.pop(_LIVE, {})
            notified = session.info.pop(_NOTICES, False)
        sender = getattr(request.app.state, "channel_sender", None)
        if notified and sender is not None:
            sender.nudge()
        processed = [kept[r.id] for r in results if r.status == "processed" and r.id in kept]
        if processed:
            hub: Hub = request.app.state.hub
            try:
                await hub.publish(processed)
            except Exception:  # committed: a lost live update, never a redelivery
                logger.warning("live updates: %d events not published", len(processed))
        return BatchResult(results=results)

    return router


async def prune_inbox_hourly(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The gateway has no worker: each of its processes prunes the gateway's event tables
    hourly, as a service's worker does its own (services/kit/events/prune.py); its batches
    skip what another process holds, so two gateways share the work."""
    while True:
        try:
            await prune(
                sessionmaker, "gateway", older_than=timedelta(days=settings.event_retention_days)
            )
        except Exception:
            logger.warning("pruning the gateway's inbox failed; next hour again", exc_info=True)
        await asyncio.sleep(3600)
