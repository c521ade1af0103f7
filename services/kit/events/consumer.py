"""Receiving events: idempotent handlers behind ``POST /events``."""

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.config import get_settings
from services.kit.events.model import Envelope, Event
from services.kit.events.prune import accepts_since
from services.kit.events.tables import event_tables

logger = logging.getLogger("keepwell.events")

E = TypeVar("E", bound=Event)
Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
ManyHandler = Callable[[AsyncSession, Sequence[tuple[Any, Envelope]]], Awaitable[None]]


class EventBatch(BaseModel):
    """Events for one subscriber, in order per aggregate."""

    events: list[Envelope]


class EventResult(BaseModel):
    id: str
    # "expired": older than the retention and not in the inbox, so possibly applied before
    # and forgotten (services/kit/events/prune.py): not applied, and not worth retrying.
    status: Literal["processed", "duplicate", "ignored", "failed", "blocked", "expired"]
    error: str | None = None


EXPIRED_ERROR = (
    "expired: older than the event retention (KEEPWELL_EVENT_RETENTION_DAYS) and no longer "
    "in the consumer's inbox, so it may have been applied already; not applied"
)


class BatchResult(BaseModel):
    results: list[EventResult]


class Consumer:
    """The events one service consumes and what it does with each."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.handlers: dict[str, Handler] = {}
        # Types applied a run at a time: consecutive events of the type in a batch, in order.
        self.many: dict[str, ManyHandler] = {}
        # Types registered by name: their handlers get the payload as a plain dict.
        self.untyped: set[str] = set()
        self.inbox = event_tables(service).inbox
        self._record_all = text(
            f"INSERT INTO {service}.inbox (event_id, producer, type)"
            " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:producers AS varchar[]),"
            " CAST(:types AS varchar[])) ON CONFLICT DO NOTHING RETURNING event_id"
        )

    @property
    def handled_types(self) -> frozenset[str]:
        return frozenset(self.handlers) | frozenset(self.many)

    def handles(
        self, event_type: type[E]
    ) -> Callable[[Callable[[AsyncSession, E, Envelope], Awaitable[None]]], Handler]:
        def register(
            handler: Callable[[AsyncSession, E, Envelope], Awaitable[None]],
        ) -> Handler:
            self.handlers[event_type.event_type] = handler
            return handler

        return register

    def handles_many(
        self, event_type: type[E]
    ) -> Callable[
        [Callable[[AsyncSession, Sequence[tuple[E, Envelope]]], Awaitable[None]]], ManyHandler
    ]:
        """Register a handler that applies several events of one type at once (a few
        statements for the lot, where one per event would be the cost of the batch): it
        gets each run of consecutive fresh events of the type in a batch, in order, and
        a single event when a failed batch is applied one event at a time."""

        def register(
            handler: Callable[[AsyncSession, Sequence[tuple[E, Envelope]]], Awaitable[None]],
        ) -> ManyHandler:
            self.many[event_type.event_type] = handler
            return handler

        return register

    def handles_type(self, event_type: str) -> Callable[[Handler], Handler]:
        """Register a handler by type name, for events whose class lives in a service this
        process need not import (several producers sharing one embedded payload contract).
        The handler receives ``envelope.payload`` (a dict) in place of a typed event."""

        def register(handler: Handler) -> Handler:
            self.handlers[event_type] = handler
            self.untyped.add(event_type)
            return handler

        return register

    async def receive(
        self, session: AsyncSession, batch: list[Envelope], *, retention: timedelta | None = None
    ) -> list[EventResult]:
        """Apply each event once. The whole batch is tried at once; if any handler fails,
        the batch is undone and applied one event at a time, so the failing event is
        reported, later events of its aggregate wait (order per aggregate) and the rest go
        on. An event older than ``retention`` (default: the setting) that the inbox does
        not know is ``expired``: the inbox forgets what it applied after the retention, so
        it could be a second delivery (services/kit/events/prune.py)."""
        settled = await self._settle_old(session, batch, retention)
        fresh = [e for e in batch if e.id not in settled]
        try:
            async with session.begin_nested():
                applied = await self._apply_all(session, fresh)
        except Exception:
            logger.info("a batch of %d events failed; retrying one at a time", len(fresh))
            applied = await self._apply_each(session, fresh)
        if not settled:
            return applied
        by_id = {r.id: r for r in applied}
        return [settled.get(e.id) or by_id[str(e.id)] for e in batch]

    async def _settle_old(
        self, session: AsyncSession, batch: list[Envelope], retention: timedelta | None
    ) -> dict[uuid.UUID, EventResult]:
        """The results of the events older than the retention, from one look at the inbox:
        known, a duplicate; unknown, expired. Neither goes on to the inbox insert: an old
        row that pruning deletes between that look and an insert would let the event in."""
        since = accepts_since(retention or timedelta(days=get_settings().event_retention_days))
        old = [e.id for e in batch if _aware(e.occurred_at) < since]
        if not old:
            return {}
        inbox = self.inbox.c
        known = set(
            (await session.execute(select(inbox.event_id).where(inbox.event_id.in_(old)))).scalars()
        )
        if len(known) < len(old):
            logger.warning(
                "%d events older than the retention and not in %s's inbox refused as expired",
                len(old) - len(known), self.service,
            )  # fmt: skip
        return {
            event_id: EventResult(id=str(event_id), status="duplicate")
            if event_id in known
            else EventResult(id=str(event_id), status="expired", error=EXPIRED_ERROR)
            for event_id in old
        }

    async def _apply_all(self, session: AsyncSession, batch: list[Envelope]) -> list[EventResult]:
        if not batch:
            return []
        # One statement of three arrays: a multi-row VALUES of the same rows is compiled
        # anew for every batch size, which took most of a consumer's time per batch.
        fresh = set(
            (
                await session.execute(
                    self._record_all,
                    {
                        "ids": [e.id for e in batch],
                        "producers": [e.producer for e in batch],
                        "types": [e.type for e in batch],
                    },
                )
            ).scalars()
        )
        results: list[EventResult] = []
        run: list[Envelope] = []  # consecutive events of one type applied together
        for envelope in batch:
            if envelope.id not in fresh:
                results.append(EventResult(id=str(envelope.id), status="duplicate"))
                continue
            if run and run[0].type != envelope.type:
                await self._handle_run(session, run)
                run = []
            if envelope.type in self.many:
                run.append(envelope)
                results.append(EventResult(id=str(envelope.id), status="processed"))
            elif envelope.type not in self.handlers:
                results.append(EventResult(id=str(envelope.id), status="ignored"))
            else:
                await self._handle(session, envelope)
                results.append(EventResult(id=str(envelope.id), status="processed"))
        if run:
            await self._handle_run(session, run)
        return results

    async def _apply_each(self, session: AsyncSession, batch: list[Envelope]) -> list[EventResult]:
        results: list[EventResult] = []
        stuck: set[tuple[str, str]] = set()
        for envelope in batch:
            key = (envelope.producer, envelope.aggregate_id)
            if key in stuck:
                results.append(EventResult(id=str(envelope.id), status="blocked"))
                continue
            try:
                async with session.begin_nested():
                    status = await self._apply(session, envelope)
            except Exception as exc:
                logger.warning("event %s (%s) failed", envelope.id, envelope.type, exc_info=True)
                stuck.add(key)
                results.append(
                    EventResult(
                        id=str(envelope.id), status="failed", error=f"{type(exc).__name__}: {exc}"
                    )
                )
                continue
            results.append(EventResult(id=str(envelope.id), status=status))
        return results

    async def _apply(
        self, session: AsyncSession, envelope: Envelope
    ) -> Literal["processed", "duplicate", "ignored"]:
        recorded = await session.execute(
            insert(self.inbox)
            .values(event_id=envelope.id, producer=envelope.producer, type=envelope.type)
            .on_conflict_do_nothing()
            .returning(self.inbox.c.event_id)
        )
        if recorded.first() is None:
            return "duplicate"
        if envelope.type in self.many:
            await self._handle_run(session, [envelope])
            return "processed"
        if envelope.type not in self.handlers:
            return "ignored"
        await self._handle(session, envelope)
        return "processed"

    async def _handle_run(self, session: AsyncSession, run: list[Envelope]) -> None:
        await self.many[run[0].type](session, [(e.event(), e) for e in run])

    async def _handle(self, session: AsyncSession, envelope: Envelope) -> None:
        event = envelope.payload if envelope.type in self.untyped else envelope.event()
        await self.handlers[envelope.type](session, event, envelope)

    def router(
        self,
        session_dependency: Callable[..., Any],
        guard: Callable[..., Any],
        retention: timedelta | None = None,
    ) -> APIRouter:
        router = APIRouter(tags=["events"])

        @router.post(
            "/events",
            summary="Receive events from the relay (internal)",
            dependencies=[Depends(guard)],
        )
        async def receive(
            batch: EventBatch,
            session: Annotated[AsyncSession, Depends(session_dependency, scope="function")],
        ) -> BatchResult:
            return BatchResult(
                results=await self.receive(session, batch.events, retention=retention)
            )

        return router


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
