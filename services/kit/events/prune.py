"""Pruning the event tables: delivered events and inbox rows older than the retention.

Every event a service publishes leaves an outbox row, a delivery per subscriber and, for
partners and failures, attempt rows; every event a service consumes leaves an inbox row.
A nightly feed adds millions of each. The workers' ``prune_events`` job (hourly, each
service its own schema) deletes what can no longer matter:

- an outbox row older than the retention whose every delivery was delivered more than the
  retention ago, with its deliveries and their attempts. A pending delivery (still being
  retried, or replayed) or a dead one (waiting for an operator) keeps its event: a delivery
  can only be sent while its outbox row exists, and it is never lost by pruning;
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
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import cache

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


# The oldest events that are safe to prune: every delivery delivered before the cutoff (an
# event with no subscriber at all has none). Rows another transaction holds are skipped.
_OUTBOX_CANDIDATES = """
SELECT o.seq FROM {schema}.outbox o
WHERE o.occurred_at < :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.delivery d
    WHERE d.event_seq = o.seq
      AND (d.status <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= :cutoff)
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
        AND (d.id <> ALL(CAST(:locked AS bigint[])) OR d.status <> 'delivered'
             OR d.delivered_at IS NULL OR d.delivered_at >= :cutoff)
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
    return text(template.format(schema=schema))


def accepts_since(retention: timedelta) -> datetime:
    """The oldest ``occurred_at`` a consumer applies without its inbox knowing the event:
    anything applied since then is still in the inbox (see the module's docstring)."""
    return clock.now() - retention


async def prune_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    *,
    before: datetime,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = MAX_RUN_SECONDS,
) -> Pruned:
    """Delete ``schema``'s events that occurred before ``before`` and whose every delivery
    was delivered before it, with their deliveries and attempts, one batch per
    transaction."""
    started = time.monotonic()
    events = deliveries = attempts = batches = 0
    longest = 0.0
    complete = True
    while True:
        if time.monotonic() - started > max_seconds:
            complete = False
            break
        batch_started = time.monotonic()
        async with sessionmaker() as session, session.begin():
            seqs = list(
                (
                    await session.execute(
                        _sql(_OUTBOX_CANDIDATES, schema), {"cutoff": before, "limit": batch_size}
                    )
                ).scalars()
            )
            if not seqs:
                break
            locked = list(
                (await session.execute(_sql(_LOCK_DELIVERIES, schema), {"seqs": seqs})).scalars()
            )
            row = (
                await session.execute(
                    _sql(_DELETE_EVENTS, schema),
                    {"seqs": seqs, "locked": locked, "cutoff": before},
                )
            ).one()
        batches += 1
        longest = max(longest, time.monotonic() - batch_started)
        events += row.events
        deliveries += row.deliveries
        attempts += row.attempts
        if len(seqs) < batch_size or row.doomed == 0:
            # The last batch: what is left is not old enough, or held by someone (a replay
            # in flight) and kept now; the next run looks again.
            break
    return Pruned(
        schema, events, deliveries, attempts, complete=complete, seconds=_since(started),
        batches=batches, longest_batch_seconds=round(longest, 3),
    )  # fmt: skip


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
    started = time.monotonic()
    deleted = batches = 0
    longest = 0.0
    complete = True
    while True:
        if time.monotonic() - started > max_seconds:
            complete = False
            break
        batch_started = time.monotonic()
        async with sessionmaker() as session, session.begin():
            result = await session.execute(
                _sql(_DELETE_INBOX, schema), {"cutoff": before, "limit": batch_size}
            )
        batches += 1
        longest = max(longest, time.monotonic() - batch_started)
        count: int = result.rowcount  # type: ignore[attr-defined]
        deleted += count
        if count < batch_size:
            break
    return Pruned(
        schema, inbox=deleted, complete=complete, seconds=_since(started), batches=batches,
        longest_batch_seconds=round(longest, 3),
    )  # fmt: skip


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
