"""Pruning the event tables: delivered events and inbox rows older than the retention.

Every event a service publishes leaves an outbox row, a delivery per subscriber and, for
partners and failures, attempt rows; every event a service consumes leaves an inbox row.
A nightly feed adds millions of each. The workers' ``prune_events`` job (hourly, each
service its own schema) deletes what can no longer matter:

- an outbox row older than the retention whose every delivery was delivered, or discarded
  by an operator, more than the retention ago, with its deliveries and their attempts. A
  pending delivery (still being retried, or replayed) or a dead one (waiting for an operator
  to replay or discard it) keeps its event: a delivery can only be sent while its outbox row
  exists, and it is never lost by pruning;
- an inbox row processed more than the retention (and :data:`INBOX_GRACE`) ago.

Why pruning the inbox cannot let an event be applied twice. The inbox is how a consumer
knows a redelivered event (a relay killed before it recorded the delivery, a lease run out,
a replay) has been applied. Its producer keeps the event while a delivery is pending or
dead, and a dead delivery can be replayed at any time, so the producer's outbox does not
bound how late a redelivery comes; the consumer's inbox must. The consumer therefore
accepts an event its inbox does not know only if the event occurred within the retention
(``Consumer.receive``): such an event, had it been applied, was applied after it occurred,
so its inbox row is younger than the retention and still there. An older event the inbox
does not know may have been applied and forgotten: it is answered ``expired``, the relay
sets its delivery dead at once (no retries), and it is not applied. An event the inbox
still knows is a duplicate at any age. :data:`INBOX_GRACE` covers the difference between
the producer's clock (``occurred_at``) and the consumer's database (``processed_at``).
So an operator can replay a dead delivery to one of our services within the retention
(``replay`` refuses older ones upfront); a partner's webhook has its own deduplication
(``X-Keepwell-Event-Id``) and can be replayed while its event is kept.

Each batch is its own short transaction: the rows are taken ``FOR UPDATE SKIP LOCKED``, so
pruning never waits for the relay, a producer or a replay in flight (what they hold is
skipped and taken at the next run), and they wait at most for one batch. Ages are measured
against the business clock (``services/kit/clock.py``), like ``occurred_at`` and
``delivered_at``; ``processed_at`` is the database's ``now()`` (both move together under
libfaketime).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit import clock

logger = logging.getLogger("keepwell.events.prune")

PRUNE_JOB = "prune_events"

BATCH_SIZE = 1000
"""Outbox rows (each with its deliveries and their attempts) or inbox rows per transaction."""

MAX_RUN_SECONDS = 240.0
"""A run stops starting batches after this long (well inside a job's timeout); the next run
goes on where it stopped."""

INBOX_GRACE = timedelta(hours=1)
"""Inbox rows are kept this much longer than the retention, for the difference between the
producer's clock and the consumer's database (see the module's docstring)."""


@dataclass(frozen=True)
class Pruned:
    """What one run deleted in one schema."""

    schema: str
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    inbox: int = 0
    complete: bool = True
    """False when the run stopped at ``max_seconds`` with old rows left for the next."""
    seconds: float = 0.0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    """The longest transaction of the run: how long its row locks were held at most."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# A delivery that is done with: delivered, or discarded by an operator, before the cutoff.
# Never NULL (a NULL here would read as "settled" under NOT).
_SETTLED = (
    "(d.status = 'delivered' AND d.delivered_at IS NOT NULL AND d.delivered_at < :cutoff)"
    " OR (d.status = 'discarded' AND d.discarded_at IS NOT NULL AND d.discarded_at < :cutoff)"
)

# The oldest events that are safe to prune: every delivery settled before the cutoff (an
# event with no subscriber at all has none). Rows another transaction holds are skipped.
_OUTBOX_CANDIDATES = """
SELECT o.seq FROM {schema}.outbox o
WHERE o.occurred_at < :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.delivery d
    WHERE d.event_seq = o.seq AND NOT ({settled})
  )
ORDER BY o.occurred_at
LIMIT :limit
FOR UPDATE OF o SKIP LOCKED
"""

# Their deliveries, locked so that a replay in flight (which locks its delivery first) is
# either done, and seen by the recheck below, or waits and then finds the row gone (404).
_LOCK_DELIVERIES = """
SELECT id FROM {schema}.delivery
WHERE event_seq = ANY(CAST(:seqs AS bigint[]))
FOR UPDATE SKIP LOCKED
"""

# Delete the candidates whose deliveries are all still delivered before the cutoff and all
# locked by us, with their deliveries and attempts, and count each.
_DELETE_EVENTS = """
WITH doomed AS (
  SELECT o.seq FROM {schema}.outbox o
  WHERE o.seq = ANY(CAST(:seqs AS bigint[]))
    AND NOT EXISTS (
      SELECT 1 FROM {schema}.delivery d
      WHERE d.event_seq = o.seq
        AND (d.id <> ALL(CAST(:locked AS bigint[])) OR NOT ({settled}))
    )
), attempts AS (
  DELETE FROM {schema}.delivery_attempt a
  USING {schema}.delivery d, doomed
  WHERE d.event_seq = doomed.seq AND a.delivery_id = d.id
  RETURNING a.id
), deliveries AS (
  DELETE FROM {schema}.delivery d USING doomed WHERE d.event_seq = doomed.seq
  RETURNING d.id
), events AS (
  DELETE FROM {schema}.outbox o USING doomed WHERE o.seq = doomed.seq
  RETURNING o.seq
)
SELECT (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM deliveries) AS deliveries,
       (SELECT count(*) FROM attempts) AS attempts,
       (SELECT count(*) FROM doomed) AS doomed
"""

_DELETE_INBOX = """
DELETE FROM {schema}.inbox
WHERE event_id IN (
  SELECT event_id FROM {schema}.inbox
  WHERE processed_at < :cutoff
  ORDER BY processed_at
  LIMIT :limit
  FOR UPDATE SKIP LOCKED
)
"""


@cache
def _sql(template: str, schema: str) -> TextClause:
    return text(template.format(schema=schema, settled=_SETTLED))


def accepts_since(retention: timedelta) -> datetime:
    """The oldest ``occurred_at`` a consumer applies without its inbox knowing the event:
    anything applied since then is still in the inbox (see the module's docstring)."""
    return clock.now() - retention


@dataclass
class _Run:
    """How a run of batches went: one short transaction per batch."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    longest: float = 0.0
    complete: bool = True


async def _in_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    batch: Callable[[AsyncSession], Awaitable[bool]],
    max_seconds: float,
) -> _Run:
    """Run ``batch`` (which says whether more may be left) one transaction at a time until
    it is done or ``max_seconds`` have passed."""
    run = _Run()
    more = True
    while more:
        if time.monotonic() - run.started > max_seconds:
            run.complete = False
            break
        batch_started = time.monotonic()
        async with sessionmaker() as session, session.begin():
            more = await batch(session)
        run.batches += 1
        run.longest = max(run.longest, time.monotonic() - batch_started)
    return run


async def prune_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    *,
    before: datetime,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = MAX_RUN_SECONDS,
) -> Pruned:
    """Delete ``schema``'s events that occurred before ``before`` and whose every delivery
    was settled before it, with their deliveries and attempts, one batch per transaction."""
    counts = {"events": 0, "deliveries": 0, "attempts": 0}

    async def batch(session: AsyncSession) -> bool:
        seqs = list(
            (
                await session.execute(
                    _sql(_OUTBOX_CANDIDATES, schema), {"cutoff": before, "limit": batch_size}
                )
            ).scalars()
        )
        if not seqs:
            return False
        locked = list(
            (await session.execute(_sql(_LOCK_DELIVERIES, schema), {"seqs": seqs})).scalars()
        )
        row = (
            await session.execute(
                _sql(_DELETE_EVENTS, schema), {"seqs": seqs, "locked": locked, "cutoff": before}
            )
        ).one()
        for name in counts:
            counts[name] += getattr(row, name)
        # Not a full batch, or nothing of it could go (held by a replay in flight, kept now):
        # what is left is not old enough or held by someone; the next run looks again.
        return len(seqs) == batch_size and row.doomed > 0

    run = await _in_batches(sessionmaker, batch, max_seconds)
    return Pruned(
        schema, counts["events"], counts["deliveries"], counts["attempts"], **_figures(run)
    )


async def prune_inbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    *,
    before: datetime,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = MAX_RUN_SECONDS,
) -> Pruned:
    """Delete ``schema``'s inbox rows processed before ``before``, one batch per
    transaction."""
    deleted = 0

    async def batch(session: AsyncSession) -> bool:
        nonlocal deleted
        result = await session.execute(
            _sql(_DELETE_INBOX, schema), {"cutoff": before, "limit": batch_size}
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
        deleted += count
        return count == batch_size

    run = await _in_batches(sessionmaker, batch, max_seconds)
    return Pruned(schema, inbox=deleted, **_figures(run))


def _figures(run: _Run) -> dict[str, Any]:
    return {
        "complete": run.complete,
        "seconds": _since(run.started),
        "batches": run.batches,
        "longest_batch_seconds": round(run.longest, 3),
    }


async def prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    *,
    older_than: timedelta,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = MAX_RUN_SECONDS,
) -> Pruned:
    """Prune one service's own event tables of what is older than ``older_than``: its
    outbox (with deliveries and attempts), then its inbox (kept :data:`INBOX_GRACE`
    longer). ``older_than`` must not be less than the retention its consumer runs with
    (``KEEPWELL_EVENT_RETENTION_DAYS``), or the inbox forgets events it still accepts."""
    started = time.monotonic()
    cutoff = clock.now() - older_than
    sent = await prune_outbox(
        sessionmaker, schema, before=cutoff, batch_size=batch_size, max_seconds=max_seconds
    )
    received = await prune_inbox(
        sessionmaker, schema, before=cutoff - INBOX_GRACE, batch_size=batch_size,
        max_seconds=max(0.0, max_seconds - sent.seconds),
    )  # fmt: skip
    pruned = Pruned(
        schema,
        sent.events,
        sent.deliveries,
        sent.attempts,
        received.inbox,
        complete=sent.complete and received.complete,
        seconds=_since(started),
        batches=sent.batches + received.batches,
        longest_batch_seconds=max(sent.longest_batch_seconds, received.longest_batch_seconds),
    )
    logger.info(
        "pruned %s's events older than %s: %d events, %d deliveries, %d attempts, "
        "%d inbox rows in %.1f s%s",
        schema, older_than, pruned.events, pruned.deliveries, pruned.attempts, pruned.inbox,
        pruned.seconds, "" if pruned.complete else " (stopped: more left for the next run)",
    )  # fmt: skip
    return pruned


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
