"""Delivering the outbox: every pending delivery, in order per subscriber and aggregate.

A relay claims the next due deliveries in a short transaction (row locks with SKIP LOCKED,
so several relays share the work, then a claim token and a lease on the rows), delivers
them outside any transaction, and records each subscriber's results in another short
transaction, only on rows still held under its claim. A relay that dies leaves its rows
claimed until the lease runs out; then another relay takes them again, and the subscriber's
inbox makes the redelivery harmless. Subscribers are delivered each on its own: a slow or
broken one (a partner's webhook that takes a second per event, a service answering
garbage) holds back only its own deliveries, never another subscriber's.
A failed delivery is retried with exponential back-off and, after ``max_attempts``, set
aside as dead until an operator replays it (at once if the consumer answered that it is
too old to be told from a duplicate: ``expired``, see services/kit/events/prune.py). A
dead delivery does not hold back later events of its aggregate: consumers keep read
models by version, not by arrival order.
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
import orjson
from pydantic import ValidationError
from sqlalchemy import ARRAY, BigInteger, any_, bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit import clock
from services.kit.auth import issue_token, relay_principal
from services.kit.config import Settings
from services.kit.events.consumer import BatchResult
from services.kit.events.model import Envelope
from services.kit.events.tables import DeliveryStatus, EventTables, event_tables
from services.kit.masking import mask_numbers, partner_sees_numbers

logger = logging.getLogger("keepwell.events.relay")

SIGNATURE_HEADER = "X-Keepwell-Signature"
TIMESTAMP_HEADER = "X-Keepwell-Timestamp"
EVENT_ID_HEADER = "X-Keepwell-Event-Id"
EVENT_TYPE_HEADER = "X-Keepwell-Event-Type"
REPLAY_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 500
    max_attempts: int = 20
    """With the back-off below, about two hours of failures before a delivery is dead: a
    service down or overloaded that long at night loses nothing to operators' replays."""
    base_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 600.0
    lease_seconds: float = 120.0
    """How long claimed deliveries are one relay's. Longer than one subscriber's pass can
    take (``service_timeout_seconds``; ``webhook_round_seconds`` plus one POST's timeout)."""
    service_timeout_seconds: float = 30.0
    """One POST of a batch to one of our services."""
    service_passes: int = 2
    """Batches in flight at once to one of our services: the next is claimed and sent while
    the service applies one, so neither side waits on the other."""
    webhook_concurrency: int = 4
    """POSTs in flight at once to one partner webhook (one aggregate each, in order)."""
    webhook_timeout_seconds: float = 10.0
    webhook_round_seconds: float = 20.0
    """A webhook's pass starts no POST after this long; the rest is taken again next."""
    poll_seconds: float = 0.5
    """While some subscriber's pass runs, how often to look for others' new deliveries."""
    max_run_seconds: float = 300.0
    """A run hands over after this long (the next sweep goes on), well inside a job's
    timeout."""

    @classmethod
    def leased(cls, lease_seconds: float) -> RelayPolicy:
        """The policy for a lease of ``lease_seconds`` (``KEEPWELL_RELAY_LEASE_SECONDS``):
        each pass's time limits scaled to fit well inside it (at 120 s, the defaults)."""
        quarter = lease_seconds / 4
        return cls(
            lease_seconds=lease_seconds,
            service_timeout_seconds=min(cls.service_timeout_seconds, quarter),
            webhook_timeout_seconds=min(cls.webhook_timeout_seconds, quarter),
            webhook_round_seconds=min(cls.webhook_round_seconds, quarter),
        )

    def backoff(self, attempts: int) -> timedelta:
        return backoff(attempts, self.base_backoff_seconds, self.max_backoff_seconds)


def backoff(attempts: int, base_seconds: float, most_seconds: float) -> timedelta:
    """The wait after ``attempts`` failures: doubling from ``base_seconds`` up to
    ``most_seconds``, jittered so that what failed together does not all come back at the
    same instant."""
    delay = min(base_seconds * 2 ** (attempts - 1), most_seconds)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class Due:
    delivery_id: int
    subscriber: str
    attempts: int
    event: dict[str, Any]
    """The :class:`Envelope`'s fields, as our own outbox's typed columns gave them (orjson
    writes the ids and instants): building and validating an Envelope per event was most
    of a claim's time, and our services need only the JSON."""
    claim: uuid.UUID | None = None

    @property
    def envelope(self) -> Envelope:
        return Envelope.model_validate(self.event)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    attempted: bool = True  # False: held back behind an earlier failed event; not an attempt
    milliseconds: int = 0
    final: bool = False  # True: retrying cannot help (the consumer answered "expired"): dead now


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


# The next pending deliveries by sequence that nobody holds, locked for the claim. Kept to
# one table and its outbox row, so that a row another relay changed meanwhile is rechecked
# cheaply (SKIP LOCKED passes over rows locked now; a row claimed or delivered and
# committed since the snapshot is rechecked). Subscribers this relay is delivering to are
# left out: one pass per subscriber at a time.
_NEXT = """
SELECT d.id, d.subscriber, d.attempts, o.id AS event_id, o.seq, o.type, o.version,
       o.aggregate_id, o.occurred_at, o.payload, o.request_id, o.actor
FROM {schema}.delivery d
JOIN {schema}.outbox o ON o.seq = d.event_seq
WHERE d.status = 'pending' AND d.next_attempt_at <= now()
  AND (d.leased_until IS NULL OR d.leased_until < now())
  AND d.subscriber <> ALL(CAST(:busy AS varchar[]))
ORDER BY d.event_seq
LIMIT :limit
FOR UPDATE OF d SKIP LOCKED
"""

_CLAIM = """
UPDATE {schema}.delivery
SET claim = :claim, leased_until = now() + make_interval(secs => :lease)
WHERE id = ANY(CAST(:ids AS bigint[]))
"""

_RELEASE = """
UPDATE {schema}.delivery SET claim = NULL, leased_until = NULL
WHERE claim = :claim AND id = ANY(CAST(:ids AS bigint[]))
"""

# For each (subscriber, aggregate) in a batch, the earliest pending delivery outside it
# (claimed or locked by another relay, backing off, or further on): nothing of the batch at
# or after it may go. The first such row in index order, not the minimum over all of them:
# an aggregate with many pending deliveries was read whole, row by row, 70-110 µs per
# delivery claimed, most of a relay's database time.
_EARLIEST_OUTSIDE = """
SELECT k.subscriber, k.aggregate_id, first.seq
FROM unnest(CAST(:subscribers AS varchar[]), CAST(:aggregates AS varchar[]))
    AS k(subscriber, aggregate_id)
CROSS JOIN LATERAL (
    SELECT d.event_seq AS seq
    FROM {schema}.delivery d
    WHERE d.subscriber = k.subscriber AND d.aggregate_id = k.aggregate_id
      AND d.status = 'pending' AND d.id <> ALL(CAST(:ids AS bigint[]))
    ORDER BY d.event_seq
    LIMIT 1
) AS first
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
        self.policy = policy or RelayPolicy.leased(settings.relay_lease_seconds)
        self.service_url = service_url or settings.url_of
        self._next_sql = text(_NEXT.format(schema=producer))
        self._earliest_outside_sql = text(_EARLIEST_OUTSIDE.format(schema=producer))
        self._claim_sql = text(_CLAIM.format(schema=producer))
        self._release_sql = text(_RELEASE.format(schema=producer))

    async def run(self, max_rounds: int | None = None) -> int:
        """Deliver until nothing is due (or ``max_run_seconds`` passed, or ``max_rounds``
        claims were made); returns how many deliveries succeeded. Each subscriber's pass
        runs on its own while the relay keeps claiming for the others, and one of our
        services gets its next batch while it applies one (``service_passes``)."""
        deadline = time.monotonic() + self.policy.max_run_seconds
        passes: dict[asyncio.Task[tuple[int, BaseException | None]], str] = {}
        broken: set[str] = set()  # a pass failed unexpectedly: left alone for this run
        delivered = rounds = 0
        try:
            while True:
                claiming = (max_rounds is None or rounds < max_rounds) and (
                    time.monotonic() < deadline
                )
                again = False  # a subscriber just claimed for could take another batch now
                if claiming:
                    rounds += 1
                    for subscriber, items in (
                        await self._claim_whole(self._full(passes) | broken)
                    ).items():
                        passes[asyncio.create_task(self._pass(subscriber, items))] = subscriber
                        again = again or subscriber not in self._full(passes)
                if not passes:
                    return delivered
                done, _ = await asyncio.wait(
                    passes,
                    timeout=(0 if again else self.policy.poll_seconds) if claiming else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    subscriber = passes.pop(task)
                    count, error = task.result()
                    if isinstance(error, Exception):
                        broken.add(subscriber)
                    elif error is not None:
                        raise error
                    delivered += count
        finally:
            for task in passes:
                task.cancel()
            if passes:
                await asyncio.gather(*passes, return_exceptions=True)

    def _full(self, passes: dict[asyncio.Task[Any], str]) -> set[str]:
        """The subscribers with as many passes under way as they take: one for a partner's
        webhook (its own concurrency is ``webhook_concurrency``), ``service_passes`` for one
        of our services. A later batch holds back what an earlier one still carries of an
        aggregate (its rows are pending and claimed), so each aggregate stays in order."""
        under_way: dict[str, int] = {}
        for subscriber in passes.values():
            under_way[subscriber] = under_way.get(subscriber, 0) + 1
        return {
            s
            for s, n in under_way.items()
            if n >= (self.policy.service_passes if s.startswith("service:") else 1)
        }

    async def round(self) -> tuple[int, int]:
        """One claim, every claimed subscriber delivered and recorded: (delivered, found)."""
        claimed = await self._claim(set())
        results = await asyncio.gather(*(self._pass(s, items) for s, items in claimed.items()))
        for _, error in results:
            if error is not None:
                raise error
        return sum(count for count, _ in results), sum(len(i) for i in claimed.values())

    async def _claim_whole(self, busy: set[str]) -> dict[str, list[Due]]:
        """:meth:`_claim`, which a relay stopped meanwhile lets finish and then gives back:
        cancelled halfway, its commit could land with nobody holding what it claimed
        until the lease ran out."""
        claiming = asyncio.ensure_future(self._claim(busy))
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            claimed = await claiming
            await self._release([i for items in claimed.values() for i in items])
            raise

    async def _claim(self, busy: set[str]) -> dict[str, list[Due]]:
        """Claim the next due deliveries under a fresh token, in a short transaction."""
        claim = uuid.uuid4()
        async with self.sessionmaker() as session, session.begin():
            due = await self._lock_due(session, claim, busy)
            if due:
                await session.execute(
                    self._claim_sql,
                    {
                        "claim": claim,
                        "lease": self.policy.lease_seconds,
                        "ids": [d.delivery_id for d in due],
                    },
                )
        by_subscriber: dict[str, list[Due]] = {}
        for item in due:
            by_subscriber.setdefault(item.subscriber, []).append(item)
        return by_subscriber

    async def _pass(self, subscriber: str, items: list[Due]) -> tuple[int, BaseException | None]:
        """Deliver one subscriber's claimed deliveries (no transaction open meanwhile), then
        record the outcomes in a short one. An error is returned, not raised, so that it
        never stops another subscriber's pass; the claim is given back at once (a relay
        killed outright cannot: its lease runs out instead)."""
        try:
            outcomes = await self._deliver(subscriber, items)
            async with self.sessionmaker() as session, session.begin():
                await self._record(session, items, outcomes)
            return sum(1 for o in outcomes.values() if o.delivered), None
        except asyncio.CancelledError:
            await self._release(items)
            raise
        except BaseException as exc:  # SystemExit too: give the claim back, then stop
            if isinstance(exc, Exception):
                logger.exception("delivering %s's events to %s failed", self.producer, subscriber)
            await self._release(items)
            return 0, exc

    async def _release(self, items: list[Due]) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                for claim in {i.claim for i in items}:
                    await session.execute(
                        self._release_sql,
                        {"claim": claim, "ids": [i.delivery_id for i in items if i.claim == claim]},
                    )
        except Exception:  # the lease runs out instead
            logger.warning("could not give back a claim of %d deliveries", len(items))

    async def _lock_due(self, session: AsyncSession, claim: uuid.UUID, busy: set[str]) -> list[Due]:
        """Lock the next due deliveries and keep those with no earlier pending delivery of
        their (subscriber, aggregate) outside the batch: a subscriber that is down or
        failing holds back only its own aggregates, never the others'."""
        params = {"limit": self.policy.batch_size, "busy": sorted(busy)}
        rows = (await session.execute(self._next_sql, params)).all()
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
            self._due(row, claim)
            for row in rows
            if row.seq < outside.get((row.subscriber, row.aggregate_id), row.seq + 1)
        ]

    def _due(self, row: Any, claim: uuid.UUID) -> Due:
        return Due(
            delivery_id=row.id,
            subscriber=row.subscriber,
            attempts=row.attempts,
            claim=claim,
            event={
                "id": str(row.event_id),
                "seq": row.seq,
                "type": row.type,
                "version": row.version,
                "producer": self.producer,
                "aggregate_id": row.aggregate_id,
                "occurred_at": row.occurred_at,
                "payload": row.payload,
                "request_id": row.request_id,
                "actor": row.actor,
            },
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
        body = orjson.dumps({"events": [i.event for i in items]})
        started = time.perf_counter()
        try:
            response = await self.http.post(
                f"{self.service_url(service)}/events",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=self.policy.service_timeout_seconds,
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
        try:
            results = BatchResult.model_validate_json(response.content).results
        except ValidationError as exc:
            # Not what a consumer answers: a failed attempt of every event sent, retried.
            problem = exc.errors()[0]["msg"]
            error = f"malformed answer from {service} (HTTP 200): {problem}: {response.text[:200]}"
            return {i.delivery_id: Outcome(False, 200, error, milliseconds=ms) for i in items}
        by_id = {r.id: r for r in results}
        outcomes: dict[int, Outcome] = {}
        for item in items:
            result = by_id.get(str(item.event["id"]))
            status = result.status if result is not None else "failed"
            outcomes[item.delivery_id] = Outcome(
                delivered=status in ("processed", "duplicate", "ignored"),
                status_code=200,
                error=result.error if result is not None else "no result for this event",
                attempted=status != "blocked",
                milliseconds=ms,
                final=status == "expired",
            )
        return outcomes

    async def _deliver_to_webhook(
        self, webhook_id: uuid.UUID, items: list[Due]
    ) -> dict[int, Outcome]:
        """One POST per event: each aggregate's events in order, stopping at its first
        failure; a few aggregates at once; no POST started after the round's time, so a
        slow partner's pass stays short and the rest is taken again next."""
        async with self.sessionmaker() as session:
            hook = (
                await session.execute(
                    self.tables.webhook.select().where(self.tables.webhook.c.id == webhook_id)
                )
            ).first()
        if hook is None or not hook.active:
            return {i.delivery_id: Outcome(False, error="subscription removed") for i in items}
        deadline = time.monotonic() + self.policy.webhook_round_seconds
        gate = asyncio.Semaphore(self.policy.webhook_concurrency)
        by_aggregate: dict[str, list[Due]] = {}
        for item in items:
            by_aggregate.setdefault(item.event["aggregate_id"], []).append(item)
        outcomes: dict[int, Outcome] = {}

        async def in_order(queue: list[Due]) -> None:
            async with gate:
                failed = False
                for item in queue:
                    if failed or time.monotonic() >= deadline:
                        outcomes[item.delivery_id] = Outcome(False, attempted=False)
                        continue
                    outcome = await self._post_webhook(hook, item)
                    outcomes[item.delivery_id] = outcome
                    failed = not outcome.delivered

        await asyncio.gather(*(in_order(queue) for queue in by_aggregate.values()))
        return outcomes

    async def _post_webhook(self, hook: Any, item: Due) -> Outcome:
        envelope = item.envelope.model_dump(mode="json")
        if not partner_sees_numbers(hook.partner, self.settings):
            envelope = mask_numbers(envelope)
        body = json.dumps(envelope, ensure_ascii=False).encode()
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
                    EVENT_ID_HEADER: str(item.event["id"]),
                    EVENT_TYPE_HEADER: item.event["type"],
                },
                timeout=self.policy.webhook_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}", milliseconds=_ms(started))
        ok = 200 <= response.status_code < 300
        return Outcome(
            ok,
            response.status_code,
            None if ok else f"HTTP {response.status_code}: {response.text[:200]}",
            milliseconds=_ms(started),
        )

    async def _record(
        self, session: AsyncSession, due: list[Due], outcomes: dict[int, Outcome]
    ) -> None:
        """Write the outcomes on the rows still held under their claim (a row whose lease
        ran out and that another relay took is that relay's to record), and give back the
        claim on what was not attempted."""
        delivery = self.tables.delivery
        now = clock.now()
        unclaimed = {"claim": None, "leased_until": None}
        held: set[int] = set()
        for claim in {i.claim for i in due}:
            ids = [i.delivery_id for i in due if i.claim == claim]
            delivered = [d for d in ids if outcomes[d].delivered]
            if delivered:
                rows = await session.execute(
                    update(delivery)
                    .where(delivery.c.id == any_(_ids(delivered)), delivery.c.claim == claim)
                    .values(
                        status=DeliveryStatus.delivered.value,
                        delivered_at=now,
                        attempts=delivery.c.attempts + 1,
                        last_error=None,
                        **unclaimed,
                    )
                    .returning(delivery.c.id)
                )
                held |= set(rows.scalars())
            untried = [d for d in ids if not outcomes[d].attempted]
            if untried:
                await session.execute(
                    update(delivery)
                    .where(delivery.c.id == any_(_ids(untried)), delivery.c.claim == claim)
                    .values(**unclaimed)
                )
        attempts = []
        for item in due:
            outcome = outcomes[item.delivery_id]
            if not outcome.attempted:
                continue
            if not outcome.delivered:
                tries = item.attempts + 1
                dead = tries >= self.policy.max_attempts or outcome.final
                row = await session.execute(
                    update(delivery)
                    .where(delivery.c.id == item.delivery_id, delivery.c.claim == item.claim)
                    .values(
                        status=(DeliveryStatus.dead if dead else DeliveryStatus.pending).value,
                        attempts=tries,
                        last_error=outcome.error,
                        next_attempt_at=now + self.policy.backoff(tries),
                        **unclaimed,
                    )
                    .returning(delivery.c.id)
                )
                if row.first() is None:
                    continue  # no longer ours
                held.add(item.delivery_id)
                if dead:
                    logger.error(
                        "delivery %s:%s of %s to %s is dead after %d attempts: %s",
                        self.producer, item.delivery_id, item.event["type"], item.subscriber,
                        tries, outcome.error,
                    )  # fmt: skip
            # Partners get a log of every attempt; our own services, of failures.
            if item.delivery_id in held and (
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
        if attempts:
            await session.execute(self.tables.attempt.insert(), attempts)


def _ids(ids: list[int]) -> Any:
    """``ids`` as one array parameter: one prepared statement whatever their number (an
    ``IN`` list is a new statement text, prepared anew, for every length)."""
    return bindparam("ids", ids, type_=ARRAY(BigInteger))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
