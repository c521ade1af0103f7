"""Sending queued notices to the robots, shared by every gateway process.

A pass claims the due messages in a short transaction: row locks with SKIP LOCKED (so two
processes never take the same row), then a claim token and a lease (``next_attempt_at``
moved ahead by ``lease_seconds``): a process that dies mid-send leaves its rows to come due
again when the lease runs out. It POSTs outside any transaction and records each result
in another short one, only on rows still held under its claim.

The per-team rate limit counts the team's attempts of the last minute (``attempted_at``,
over all its channels) while holding a transaction-scoped advisory lock on the team, so
processes claiming for the same team take turns and none overdraws it; rows over the
limit are moved to when the window has room again, never dropped. PostgreSQL rather than
Redis: the count is of the rows themselves, so it is right whatever Redis does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from gateway.channels import robots
from gateway.config import GatewaySettings
from gateway.models import ChannelKind, ChannelMessage, MessageStatus, TeamChannel
from services.kit import clock
from services.kit.config import Settings
from services.kit.events.relay import backoff

logger = logging.getLogger("keepwell.gateway.channels")

WINDOW = timedelta(minutes=1)
"""The rate limit's window: the robots allow about 20 messages a minute each."""

MESSAGES = Counter(
    "keepwell_gateway_channel_messages_total",
    "Attempts to send a notice to a staff channel, by robot and outcome",
    ["channel", "outcome"],
)


@dataclass(frozen=True)
class ChannelPolicy:
    rate_per_minute: int = 20
    """Messages per team per minute, over all its channels and every process."""
    max_attempts: int = 8
    base_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 600.0
    rate_limited_seconds: float = 60.0
    """How long a message the robot refused for its rate limit waits (not an attempt)."""
    batch_size: int = 50
    concurrency: int = 10
    timeout_seconds: float = 10.0
    """One POST, whole; a pass takes at most ceil(batch / concurrency) of these."""
    lease_seconds: float = 120.0
    """How long claimed rows are one process's: well past the longest pass (50 s)."""
    poll_seconds: float = 1.0
    keep_days: int = 7
    """Sent and dead messages are deleted this long after they were queued (the events'
    retention: an older event is refused by the consumer, so it cannot come again)."""
    prune_every_seconds: float = 3600.0

    def __post_init__(self) -> None:
        longest = math.ceil(self.batch_size / self.concurrency) * self.timeout_seconds
        if longest >= self.lease_seconds:
            raise ValueError(f"a pass may take {longest} s: lease_seconds must be longer")

    @classmethod
    def from_settings(cls, gateway: GatewaySettings, settings: Settings) -> ChannelPolicy:
        return cls(
            rate_per_minute=gateway.channel_rate_per_minute,
            max_attempts=gateway.channel_max_attempts,
            keep_days=settings.event_retention_days,
        )

    def backoff(self, attempts: int) -> timedelta:
        return backoff(attempts, self.base_backoff_seconds, self.max_backoff_seconds)


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel_id: int
    kind: ChannelKind
    webhook_url: str
    secret: str | None
    body: dict[str, Any]
    attempts: int


async def lock_team(session: AsyncSession, team: str) -> None:
    """The team's turn to count and claim, until the transaction ends (its key space apart
    from other advisory locks by the first int4)."""
    key = func.pg_advisory_xact_lock(func.hashtext("gateway.channel_rate"), func.hashtext(team))
    await session.execute(select(key))


class ChannelSender:
    """Sends the queued notices; one per gateway process (``run`` for its lifespan)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        policy: ChannelPolicy | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.http = http
        self.policy = policy or ChannelPolicy()
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Look for due messages now rather than within a second (after a commit that
        queued some)."""
        self._wake.set()

    async def run(self) -> None:
        """Pass after pass until cancelled: at once while passes find full batches, else
        every ``poll_seconds`` or when nudged. A failing pass (the database down) is logged
        once, and passes go on."""
        failing = False
        pruned_at = -math.inf
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - pruned_at > self.policy.prune_every_seconds:
                    await self.prune()
                    pruned_at = time.monotonic()
                claimed, _ = await self._finishing(asyncio.ensure_future(self._pass(None)))
            except Exception as exc:
                if not failing:
                    # The first line only: SQLAlchemy's text goes on with the statement.
                    first = str(exc).splitlines()[0] if str(exc) else ""
                    logger.warning(
                        "staff channels: a pass failed (%s: %s); retrying every second",
                        type(exc).__name__,
                        first[:300],
                    )
                failing, claimed = True, 0
            else:
                if failing:
                    logger.info("staff channels: passes work again")
                failing = False
            if claimed < self.policy.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.policy.poll_seconds)

    async def _finishing(self, current: asyncio.Future[tuple[int, int]]) -> tuple[int, int]:
        """The pass's result; cancelled (the gateway stopping), the pass still records what
        it sent, given one POST's time, so a shutdown sends nothing twice."""
        try:
            return await asyncio.shield(current)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(current, self.policy.timeout_seconds + 5)
            raise

    async def prune(self, now: datetime | None = None) -> int:
        """Delete the sent and dead messages queued more than ``keep_days`` before ``now``,
        1,000 per transaction; how many."""
        before = (now or clock.now()) - timedelta(days=self.policy.keep_days)
        m = ChannelMessage
        old = (
            select(col(m.id))
            .where(col(m.status) != MessageStatus.pending, col(m.created_at) < before)
            .limit(1000)
        )
        total = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                result = await session.execute(delete(m).where(col(m.id).in_(old)))
            done = int(getattr(result, "rowcount", 0) or 0)
            total += done
            if done < 1000:
                return total

    async def send_due(self, now: datetime | None = None) -> int:
        """One pass: claim what is due at ``now`` (default: the clock's now), send it,
        record the results. Returns how many were sent."""
        return (await self._pass(now))[1]

    async def _pass(self, now: datetime | None) -> tuple[int, int]:
        at = now or clock.now()
        claim = uuid.uuid4()
        items = await self._claim(claim, at)
        if not items:
            return 0, 0
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def send(item: _Claimed) -> robots.Answer:
            async with gate:
                return await robots.post(
                    self.http,
                    item.kind,
                    item.webhook_url,
                    item.secret,
                    item.body,
                    self.policy.timeout_seconds,
                    # DingTalk checks the signature's time against its own clock: the
                    # real one, whatever instant the pass is for.
                    int(clock.now().timestamp() * 1000),
                )

        answers = await asyncio.gather(*(send(i) for i in items))
        await self._record(claim, now or clock.now(), list(zip(items, answers, strict=True)))
        return len(items), sum(1 for a in answers if a.ok)

    async def _claim(self, claim: uuid.UUID, now: datetime) -> list[_Claimed]:
        m, c = ChannelMessage, TeamChannel
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        col(m.id),
                        col(m.channel_id),
                        col(m.body),
                        col(m.attempts),
                        col(c.team_id),
                        col(c.kind),
                        col(c.webhook_url),
                        col(c.secret),
                    )
                    .join(c, col(c.id) == col(m.channel_id))
                    .where(
                        col(m.status) == MessageStatus.pending,
                        col(m.next_attempt_at) <= now,
                        col(c.active),
                    )
                    .order_by(col(m.next_attempt_at), col(m.id))
                    .limit(self.policy.batch_size)
                    .with_for_update(of=m, skip_locked=True)
                )
            ).all()
            by_team: dict[str, list[Any]] = {}
            for row in rows:
                by_team.setdefault(row.team_id, []).append(row)
            taken: list[Any] = []
            # Teams in one order in every process, so their locks cannot deadlock.
            for team in sorted(by_team):
                allowed, wait_until = await self._room(session, team, now)
                team_rows = by_team[team]
                taken += team_rows[:allowed]
                if team_rows[allowed:]:
                    await session.execute(
                        update(m)
                        .where(col(m.id).in_([r.id for r in team_rows[allowed:]]))
                        .values(next_attempt_at=wait_until)
                    )
            if taken:
                await session.execute(
                    update(m)
                    .where(col(m.id).in_([r.id for r in taken]))
                    .values(
                        claim=claim,
                        attempted_at=now,
                        next_attempt_at=now + timedelta(seconds=self.policy.lease_seconds),
                    )
                )
        return [
            _Claimed(
                id=r.id,
                channel_id=r.channel_id,
                kind=ChannelKind(r.kind),
                webhook_url=r.webhook_url,
                secret=r.secret,
                body=r.body,
                attempts=r.attempts,
            )
            for r in taken
        ]

    async def _room(self, session: AsyncSession, team: str, now: datetime) -> tuple[int, datetime]:
        """How many messages the team may still send in the window ending ``now``, and when
        the window has room again; under the team's lock until the transaction ends."""
        m, c = ChannelMessage, TeamChannel
        await lock_team(session, team)
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(col(m.attempted_at)))
                .select_from(m)
                .join(c, col(c.id) == col(m.channel_id))
                .where(col(c.team_id) == team, col(m.attempted_at) > now - WINDOW)
            )
        ).one()
        start = min(oldest, now) if oldest is not None else now
        return max(0, self.policy.rate_per_minute - count), start + WINDOW

    async def _record(
        self, claim: uuid.UUID, now: datetime, results: list[tuple[_Claimed, robots.Answer]]
    ) -> None:
        m = ChannelMessage
        async with self.sessionmaker() as session, session.begin():
            for item, answer in results:
                held = (col(m.id) == item.id, col(m.claim) == claim)
                if answer.ok:
                    values: dict[str, Any] = {
                        "status": MessageStatus.sent,
                        "attempts": item.attempts + 1,
                        "sent_at": now,
                        "last_error": None,
                    }
                    outcome = "sent"
                elif answer.rate_limited:
                    wait = self.policy.rate_limited_seconds * random.uniform(1.0, 1.2)
                    values = {
                        "next_attempt_at": now + timedelta(seconds=wait),
                        "last_error": answer.error,
                    }
                    outcome = "rate_limited"
                elif item.attempts + 1 >= self.policy.max_attempts:
                    values = {
                        "status": MessageStatus.dead,
                        "attempts": item.attempts + 1,
                        "last_error": answer.error,
                    }
                    outcome = "dead"
                    logger.warning(
                        "staff channels: message %d to channel %d is dead after %d attempts: %s",
                        item.id,
                        item.channel_id,
                        item.attempts + 1,
                        answer.error,
                    )
                else:
                    values = {
                        "attempts": item.attempts + 1,
                        "next_attempt_at": now + self.policy.backoff(item.attempts + 1),
                        "last_error": answer.error,
                    }
                    outcome = "failed"
                await session.execute(update(m).where(*held).values(claim=None, **values))
                MESSAGES.labels(item.kind.value, outcome).inc()
