"""Delivering the outbox: every pending delivery, in order per subscriber and aggregate.

Several relays may run at once (row locks with SKIP LOCKED). A delivery is marked in the
same transaction that locked it, after the subscriber answered; a relay that dies in
between leaves it pending, and the subscriber's inbox makes the redelivery harmless.
A failed delivery is retried with exponential back-off and, after ``max_attempts``, set
aside as dead until an operator replays it. A dead delivery does not hold back later
events of its aggregate: consumers keep read models by version, not by arrival order.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit import clock
from services.kit.auth import issue_token, relay_principal
from services.kit.config import Settings
from services.kit.events.model import Envelope
from services.kit.events.tables import DeliveryStatus, EventTables, event_tables

logger = logging.getLogger("keepwell.events.relay")

SIGNATURE_HEADER = "X-Keepwell-Signature"
TIMESTAMP_HEADER = "X-Keepwell-Timestamp"
EVENT_ID_HEADER = "X-Keepwell-Event-Id"
EVENT_TYPE_HEADER = "X-Keepwell-Event-Type"
REPLAY_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 500
    max_attempts: int = 8
    base_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 600.0

    def backoff(self, attempts: int) -> timedelta:
        delay = min(self.base_backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        # Jitter so that many failed deliveries do not all come back at the same instant.
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class Due:
    delivery_id: int
    subscriber: str
    attempts: int
    envelope: Envelope


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    attempted: bool = True  # False: held back behind an earlier failed event; not an attempt
    milliseconds: int = 0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def verify_signature(
    secret: str,
    headers: Any,
    body: bytes,
    *,
    now: float | None = None,
    window_seconds: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a partner runs on each webhook: a valid signature over a recent timestamp."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    if age > window_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# The next pending deliveries by sequence, locked. Kept to one table and its outbox row, so
# that a row another relay changed meanwhile is rechecked cheaply (SKIP LOCKED passes over
# rows locked now; a row delivered and committed since the snapshot is rechecked).
_NEXT = """
SELECT d.id, d.subscriber, d.attempts, o.id AS event_id, o.seq, o.type, o.version,
       o.aggregate_id, o.occurred_at, o.payload, o.request_id, o.actor
FROM {schema}.delivery d
JOIN {schema}.outbox o ON o.seq = d.event_seq
WHERE d.status = 'pending' AND d.next_attempt_at <= now()
ORDER BY d.event_seq
LIMIT :limit
FOR UPDATE OF d SKIP LOCKED
"""

# For each (subscriber, aggregate) in a batch, the earliest pending delivery outside it
# (locked by another relay, or further on): nothing of the batch at or after it may go.
_EARLIEST_OUTSIDE = """
SELECT d.subscriber, d.aggregate_id, min(d.event_seq) AS seq
FROM {schema}.delivery d
JOIN unnest(CAST(:subscribers AS varchar[]), CAST(:aggregates AS varchar[]))
    AS k(subscriber, aggregate_id)
    ON d.subscriber = k.subscriber AND d.aggregate_id = k.aggregate_id
WHERE d.status = 'pending' AND d.id <> ALL(CAST(:ids AS bigint[]))
GROUP BY d.subscriber, d.aggregate_id
"""


class Relay:
    """Delivers one producer's outbox to its subscribers."""

    def __init__(
        self,
        producer: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: Settings,
        policy: RelayPolicy | None = None,
        service_url: Callable[[str], str] | None = None,
    ) -> None:
        self.producer = producer
        self.tables: EventTables = event_tables(producer)
        self.sessionmaker = sessionmaker
        self.http = http
        self.settings = settings
        self.policy = policy or RelayPolicy()
        self.service_url = service_url or settings.url_of
        self._next_sql = text(_NEXT.format(schema=producer))
        self._earliest_outside_sql = text(_EARLIEST_OUTSIDE.format(schema=producer))

    async def run(self, max_rounds: int | None = None) -> int:
        """Deliver until nothing is due; returns how many deliveries succeeded."""
        delivered = 0
        rounds = 0
        while max_rounds is None or rounds < max_rounds:
            rounds += 1
            done, found = await self.round()
            delivered += done
            if found == 0:
                break
        return delivered

    async def round(self) -> tuple[int, int]:
        """One locked batch: (delivered, found)."""
        async with self.sessionmaker() as session, session.begin():
            due = await self._lock_due(session)
            if not due:
                return 0, 0
            by_subscriber: dict[str, list[Due]] = {}
            for item in due:
                by_subscriber.setdefault(item.subscriber, []).append(item)
            outcomes: dict[int, Outcome] = {}
            results = await asyncio.gather(
                *(self._deliver(subscriber, items) for subscriber, items in by_subscriber.items())
            )
            for result in results:
                outcomes.update(result)
            await self._record(session, due, outcomes)
            return sum(1 for o in outcomes.values() if o.delivered), len(due)

    async def _lock_due(self, session: AsyncSession) -> list[Due]:
        """Lock the next due deliveries and keep those with no earlier pending delivery of
        their (subscriber, aggregate) outside the batch: a subscriber that is down or
        failing holds back only its own aggregates, never the others'."""
        rows = (await session.execute(self._next_sql, {"limit": self.policy.batch_size})).all()
        if not rows:
            return []
        keys = sorted({(r.subscriber, r.aggregate_id) for r in rows})
        outside = {
            (r.subscriber, r.aggregate_id): r.seq
            for r in await session.execute(
                self._earliest_outside_sql,
                {
                    "subscribers": [k[0] for k in keys],
                    "aggregates": [k[1] for k in keys],
                    "ids": [r.id for r in rows],
                },
            )
        }
        return [
            self._due(row)
            for row in rows
            if row.seq < outside.get((row.subscriber, row.aggregate_id), row.seq + 1)
        ]

    def _due(self, row: Any) -> Due:
        return Due(
            delivery_id=row.id,
            subscriber=row.subscriber,
            attempts=row.attempts,
            envelope=Envelope(
                id=row.event_id,
                seq=row.seq,
                type=row.type,
                version=row.version,
                producer=self.producer,
                aggregate_id=row.aggregate_id,
                occurred_at=row.occurred_at,
                payload=row.payload,
                request_id=row.request_id,
                actor=row.actor,
            ),
        )

    async def _deliver(self, subscriber: str, items: list[Due]) -> dict[int, Outcome]:
        kind, _, name = subscriber.partition(":")
        if kind == "service":
            return await self._deliver_to_service(name, items)
        if kind == "webhook":
            return await self._deliver_to_webhook(uuid.UUID(name), items)
        return {
            i.delivery_id: Outcome(False, error=f"unknown subscriber {subscriber}") for i in items
        }

    async def _deliver_to_service(self, service: str, items: list[Due]) -> dict[int, Outcome]:
        token = issue_token(relay_principal(self.producer), self.settings)
        body = {"events": [i.envelope.model_dump(mode="json") for i in items]}
        started = time.perf_counter()
        try:
            response = await self.http.post(
                f"{self.service_url(service)}/events",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            ms = _ms(started)
            error = f"{type(exc).__name__}: {exc}"
            return {i.delivery_id: Outcome(False, error=error, milliseconds=ms) for i in items}
        ms = _ms(started)
        if response.status_code != 200:
            error = f"HTTP {response.status_code}: {response.text[:500]}"
            return {
                i.delivery_id: Outcome(False, response.status_code, error, milliseconds=ms)
                for i in items
            }
        by_id = {r["id"]: r for r in response.json()["results"]}
        outcomes: dict[int, Outcome] = {}
        for item in items:
            result = by_id.get(str(item.envelope.id), {"status": "failed", "error": "no result"})
            status = result["status"]
            outcomes[item.delivery_id] = Outcome(
                delivered=status in ("processed", "duplicate", "ignored"),
                status_code=200,
                error=result.get("error"),
                attempted=status != "blocked",
                milliseconds=ms,
            )
        return outcomes

    async def _deliver_to_webhook(
        self, webhook_id: uuid.UUID, items: list[Due]
    ) -> dict[int, Outcome]:
        async with self.sessionmaker() as session:
            hook = (
                await session.execute(
                    self.tables.webhook.select().where(self.tables.webhook.c.id == webhook_id)
                )
            ).first()
        outcomes: dict[int, Outcome] = {}
        failed = False
        for item in items:  # one POST per event, in order; stop at the first failure
            if hook is None or not hook.active:
                outcomes[item.delivery_id] = Outcome(False, error="subscription removed")
                continue
            if failed:
                outcomes[item.delivery_id] = Outcome(False, attempted=False)
                continue
            body = json.dumps(item.envelope.model_dump(mode="json"), ensure_ascii=False).encode()
            timestamp = str(int(time.time()))
            started = time.perf_counter()
            try:
                response = await self.http.post(
                    hook.url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        TIMESTAMP_HEADER: timestamp,
                        SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
                        EVENT_ID_HEADER: str(item.envelope.id),
                        EVENT_TYPE_HEADER: item.envelope.type,
                    },
                )
                ok = 200 <= response.status_code < 300
                outcome = Outcome(
                    ok,
                    response.status_code,
                    None if ok else f"HTTP {response.status_code}: {response.text[:200]}",
                    milliseconds=_ms(started),
                )
            except httpx.HTTPError as exc:
                outcome = Outcome(
                    False, error=f"{type(exc).__name__}: {exc}", milliseconds=_ms(started)
                )
            outcomes[item.delivery_id] = outcome
            failed = not outcome.delivered
        return outcomes

    async def _record(
        self, session: AsyncSession, due: list[Due], outcomes: dict[int, Outcome]
    ) -> None:
        delivery = self.tables.delivery
        now = clock.now()
        delivered = [i.delivery_id for i in due if outcomes[i.delivery_id].delivered]
        if delivered:
            await session.execute(
                update(delivery)
                .where(delivery.c.id.in_(delivered))
                .values(
                    status=DeliveryStatus.delivered.value,
                    delivered_at=now,
                    attempts=delivery.c.attempts + 1,
                    last_error=None,
                )
            )
        attempts = []
        for item in due:
            outcome = outcomes[item.delivery_id]
            # Partners get a log of every attempt; our own services, of failures.
            if outcome.attempted and (
                not outcome.delivered or item.subscriber.startswith("webhook:")
            ):
                attempts.append(
                    {
                        "delivery_id": item.delivery_id,
                        "status_code": outcome.status_code,
                        "error": outcome.error,
                        "milliseconds": outcome.milliseconds,
                    }
                )
            if outcome.delivered or not outcome.attempted:
                continue
            tries = item.attempts + 1
            dead = tries >= self.policy.max_attempts
            if dead:
                logger.error(
                    "delivery %s:%s of %s to %s is dead after %d attempts: %s",
                    self.producer, item.delivery_id, item.envelope.type, item.subscriber, tries,
                    outcome.error,
                )  # fmt: skip
            await session.execute(
                update(delivery)
                .where(delivery.c.id == item.delivery_id)
                .values(
                    status=(DeliveryStatus.dead if dead else DeliveryStatus.pending).value,
                    attempts=tries,
                    last_error=outcome.error,
                    next_attempt_at=now + self.policy.backoff(tries),
                )
            )
        if attempts:
            await session.execute(self.tables.attempt.insert(), attempts)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
