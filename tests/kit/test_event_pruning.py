"""Pruning the event tables: what is old and delivered goes, with its deliveries, attempts
and inbox rows; what may still be sent, or was sent lately, stays; an old event the inbox
has forgotten is never applied a second time; a batch never waits for anyone.

Ages are set relative to now (rows are moved back by days), never to a calendar date."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import FromClause, Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from services.kit import clock
from services.kit.config import Settings
from services.kit.db import create_sessionmaker, libpq_url, session_scope
from services.kit.errors import Conflict
from services.kit.events import event_tables
from services.kit.events.admin import discard, list_deliveries, replay
from services.kit.events.consumer import EXPIRED_ERROR
from services.kit.events.contracts import subscribe, unsubscribe
from services.kit.events.prune import INBOX_GRACE, Pruned, prune, prune_inbox, prune_outbox
from services.kit.events.publish import publish
from services.kit.events.relay import Relay, RelayPolicy
from services.kit.events.tables import DeliveryStatus
from services.kit.testing import Infra, ProbeConsumer, ProbePinged, serve

PROFILE = event_tables("profile")
PROBE = ProbeConsumer()
INBOX = event_tables(PROBE.schema).inbox
WEEK = timedelta(days=7)


@dataclass
class World:
    engine: AsyncEngine
    settings: Settings
    probe_url: str
    http: httpx.AsyncClient
    urls: dict[str, str] = field(default_factory=dict)

    def relay(self, **policy: float) -> Relay:
        return Relay(
            "profile",
            create_sessionmaker(self.engine),
            self.http,
            self.settings,
            RelayPolicy(**policy),  # type: ignore[arg-type]
            service_url=lambda name: self.urls.get(name, self.probe_url),
        )

    async def produce(self, *numbers: int) -> None:
        async with session_scope(create_sessionmaker(self.engine)) as session:
            for n in numbers:
                await publish(session, ProbePinged(n=n), aggregate_id=f"agg-{n}")

    async def age(self, days: float, *numbers: int) -> None:
        """Move events ``numbers`` (and their deliveries, attempts and inbox rows) ``days``
        into the past, as if all of it had happened then."""
        shift = {"days": days, "ns": [str(n) for n in numbers]}
        back = "- make_interval(days => :days)"
        events = "SELECT seq FROM profile.outbox WHERE payload->>'n' = ANY(CAST(:ns AS text[]))"
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    f"UPDATE probe.inbox SET processed_at = processed_at {back}"
                    " WHERE event_id IN (SELECT id FROM profile.outbox"
                    "  WHERE payload->>'n' = ANY(CAST(:ns AS text[])))"
                ),
                shift,
            )
            await conn.execute(
                text(
                    "UPDATE profile.delivery_attempt SET at = at - make_interval(days => :days)"
                    " WHERE delivery_id IN (SELECT id FROM profile.delivery"
                    f"  WHERE event_seq IN ({events}))"
                ),
                shift,
            )
            await conn.execute(
                text(
                    "UPDATE profile.delivery"
                    " SET delivered_at = delivered_at - make_interval(days => :days),"
                    "     next_attempt_at = next_attempt_at - make_interval(days => :days)"
                    f" WHERE event_seq IN ({events})"
                ),
                shift,
            )
            await conn.execute(
                text(
                    f"UPDATE profile.outbox SET occurred_at = occurred_at {back}"
                    " WHERE payload->>'n' = ANY(CAST(:ns AS text[]))"
                ),
                shift,
            )

    async def set_delivery(
        self, n: int, subscriber: str = "service:probe", **values: object
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                PROFILE.delivery.update()
                .where(
                    PROFILE.delivery.c.subscriber == subscriber,
                    PROFILE.delivery.c.event_seq.in_(self._seq_of(n)),
                )
                .values(**values)
            )

    def _seq_of(self, n: int) -> Select[tuple[int]]:
        return select(PROFILE.outbox.c.seq).where(PROFILE.outbox.c.payload["n"].as_integer() == n)

    async def events_left(self) -> list[int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(PROFILE.outbox.c.payload["n"].as_integer()).order_by(PROFILE.outbox.c.seq)
            )
            return [r[0] for r in rows]

    async def count(self, table: FromClause) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)

    async def prune(self, batch_size: int = 1000) -> Pruned:
        """Profile's outbox side and the probe's inbox side, as their workers would."""
        sessionmaker = create_sessionmaker(self.engine)
        cutoff = clock.now() - WEEK
        sent = await prune_outbox(sessionmaker, "profile", before=cutoff, batch_size=batch_size)
        received = await prune_inbox(
            sessionmaker, PROBE.schema, before=cutoff - INBOX_GRACE, batch_size=batch_size
        )
        return Pruned(
            "profile", sent.events, sent.deliveries, sent.attempts, received.inbox,
            batches=sent.batches + received.batches,
        )  # fmt: skip


@pytest.fixture
async def world(engine: AsyncEngine, settings: Settings) -> AsyncIterator[World]:
    await PROBE.create_tables(engine)
    PROBE.failing.clear()
    try:
        async with serve(PROBE.app(settings)) as url, httpx.AsyncClient(timeout=5) as http:
            yield World(engine, settings, url, http)
    finally:
        await PROBE.drop_tables(engine)


async def test_old_delivered_events_go_with_their_deliveries_attempts_and_inbox_rows(
    world: World,
) -> None:
    PROBE.failing.add(1)  # event 1 fails once: a failed attempt is logged
    await world.produce(1, 2, 3)
    await world.relay(base_backoff_seconds=0).run(max_rounds=1)
    PROBE.failing.clear()
    await world.relay(base_backoff_seconds=0).run()
    unsubscribe(PROBE.schema)  # an event nobody subscribes to: no delivery at all
    try:
        await world.produce(4)
    finally:
        subscribe(PROBE.schema, frozenset({ProbePinged.event_type}))
    assert await world.count(PROFILE.attempt) == 1
    await world.age(8, 1, 2, 4)  # 3 is recent

    pruned = await world.prune()

    assert (pruned.events, pruned.deliveries, pruned.attempts, pruned.inbox) == (3, 2, 1, 2)
    assert await world.events_left() == [3]
    assert await world.count(PROFILE.delivery) == 1
    assert await world.count(PROFILE.attempt) == 0
    async with world.engine.connect() as conn:
        kept = (await conn.execute(select(INBOX.c.event_id))).scalars().all()
        recent = (
            await conn.execute(
                select(PROFILE.outbox.c.id).where(PROFILE.outbox.c.payload["n"].as_integer() == 3)
            )
        ).scalar_one()
    assert kept == [recent]
    # What the consumer did is its own data: pruning the event tables leaves it be.
    assert sorted(await PROBE.applied(world.engine)) == [("agg-1", 1), ("agg-2", 2), ("agg-3", 3)]
    assert (await world.prune()).events == 0  # nothing more to do


async def test_an_event_stays_while_any_delivery_is_pending_dead_or_delivered_lately(
    world: World,
) -> None:
    subscribe("other", frozenset({ProbePinged.event_type}))  # a second subscriber of each
    try:
        await world.produce(1, 2, 3, 4)
    finally:
        unsubscribe("other")
    async with world.engine.begin() as conn:
        await conn.execute(
            PROFILE.delivery.update().values(status="delivered", delivered_at=func.now())
        )
    await world.age(10, 1, 2, 3, 4)
    await world.set_delivery(1, "service:other", status="pending")  # still being retried
    await world.set_delivery(2, "service:other", status="dead", delivered_at=None)
    await world.set_delivery(3, "service:other", delivered_at=func.now())  # replayed lately

    pruned = await world.prune()

    assert (pruned.events, pruned.deliveries) == (1, 2)
    assert await world.events_left() == [1, 2, 3]
    assert await world.count(PROFILE.delivery) == 6  # every delivery of a kept event stays
    async with session_scope(create_sessionmaker(world.engine)) as session:
        dead = await list_deliveries(session, "profile", status=DeliveryStatus.dead)
    assert [d.subscriber for d in dead] == ["service:other"]  # for an operator to see


async def test_a_discarded_delivery_lets_its_event_go_once_the_retention_has_passed_since(
    world: World,
) -> None:
    await world.produce(1)
    await world.age(10, 1)
    await world.set_delivery(1, status="dead", attempts=8, delivered_at=None)
    async with session_scope(create_sessionmaker(world.engine)) as session:
        [dead] = await list_deliveries(session, "profile")
        await discard(session, "profile", int(dead.id.split(":")[1]), by="op", reason="无效号码")

    assert (await world.prune()).events == 0  # discarded just now: kept a retention longer
    assert await world.events_left() == [1]

    await world.set_delivery(1, discarded_at=func.now() - timedelta(days=8))
    pruned = await world.prune()
    assert (pruned.events, pruned.deliveries) == (1, 1)
    assert await world.events_left() == []


async def test_an_old_event_sent_again_after_its_inbox_row_was_pruned_is_not_applied_twice(
    world: World,
) -> None:
    await world.produce(1)
    await world.relay().run()
    assert await PROBE.applied(world.engine) == [("agg-1", 1)]
    # Applied 8 days ago, but its delivery was never recorded (the relay was killed before
    # it could, and the workers were down since): it is still pending.
    await world.age(8, 1)
    await world.set_delivery(1, status="pending", attempts=1, delivered_at=None)

    pruned = await world.prune()
    assert (pruned.events, pruned.inbox) == (0, 1)  # the event stays; the inbox forgot it

    await world.relay().run()  # the workers are back: the relay sends it again
    assert await PROBE.applied(world.engine) == [("agg-1", 1)]  # not a second time
    async with session_scope(create_sessionmaker(world.engine)) as session:
        [delivery] = await list_deliveries(session, "profile")
    assert (delivery.status, delivery.attempts) == ("dead", 2)  # at once, no retries
    assert delivery.last_error == EXPIRED_ERROR

    # And an operator cannot replay it to a service any more (a partner's webhook could be).
    with pytest.raises(Conflict, match="保留期"):
        async with session_scope(create_sessionmaker(world.engine)) as session:
            await replay(session, "profile", int(delivery.id.split(":")[1]))


async def test_an_old_event_the_inbox_still_knows_is_a_duplicate(world: World) -> None:
    await world.produce(1)
    await world.relay().run()
    await world.age(8, 1)  # older than the retention, but the inbox has not been pruned
    await world.set_delivery(1, status="pending", delivered_at=None)
    await world.relay().run()
    assert await PROBE.applied(world.engine) == [("agg-1", 1)]
    async with session_scope(create_sessionmaker(world.engine)) as session:
        [delivery] = await list_deliveries(session, "profile")
    assert delivery.status == "delivered"


async def test_a_batch_skips_what_a_replay_or_a_producer_holds_and_never_waits(
    world: World,
) -> None:
    await world.produce(1, 2, 3)
    await world.relay().run()
    await world.age(8, 1, 2, 3)
    async with world.engine.connect() as replaying, world.engine.connect() as producing:
        # A replay of event 1's delivery in flight; a producer holding event 2's row.
        await replaying.execute(
            select(PROFILE.delivery.c.id)
            .where(PROFILE.delivery.c.event_seq.in_(world._seq_of(1)))
            .with_for_update()
        )
        await producing.execute(
            select(PROFILE.outbox.c.seq)
            .where(PROFILE.outbox.c.payload["n"].as_integer() == 2)
            .with_for_update(key_share=True)
        )
        pruned = await asyncio.wait_for(world.prune(), timeout=10)
        assert pruned.events == 1
        assert await world.events_left() == [1, 2]
        await replaying.rollback()
        await producing.rollback()
    assert (await world.prune()).events == 2
    assert await world.events_left() == []


async def test_a_long_backlog_goes_in_many_short_batches(world: World) -> None:
    await world.produce(*range(7))
    await world.relay().run()
    await world.age(30, *range(7))
    pruned = await world.prune(batch_size=2)
    assert (pruned.events, pruned.deliveries, pruned.inbox) == (7, 7, 7)
    assert pruned.batches == 4 + 4  # 2, 2, 2 and 1 of each, a transaction each
    assert await world.events_left() == []


async def test_a_service_prunes_its_own_outbox_and_inbox(world: World) -> None:
    """``prune`` is what each worker runs for its own schema: outbox side and inbox side."""
    await world.produce(1)
    await world.relay().run()
    await world.age(8, 1)
    async with world.engine.begin() as conn:  # profile's own inbox: an event it consumed
        await conn.execute(
            text(
                "INSERT INTO profile.inbox (event_id, producer, type, processed_at)"
                " VALUES (gen_random_uuid(), 'care', 'care.task_completed',"
                "  now() - interval '8 days'), (gen_random_uuid(), 'care', 'care.task_completed',"
                "  now())"
            )
        )
    pruned = await prune(create_sessionmaker(world.engine), "profile", older_than=WEEK)
    assert (pruned.events, pruned.deliveries, pruned.inbox, pruned.complete) == (1, 1, 1, True)
    assert await world.count(event_tables("profile").inbox) == 1


def test_the_command_prunes_now_and_refuses_to_keep_less_than_the_retention(
    infra: Infra,
) -> None:
    from keepwell.cli import app

    async def given() -> None:
        conn = await asyncpg.connect(libpq_url(infra.database_url))
        try:
            await conn.execute(
                "INSERT INTO warning.outbox (id, type, version, aggregate_id, occurred_at, payload)"
                " VALUES (gen_random_uuid(), 'warning.raised', 1, 'w1', now() - interval '9 days',"
                " '{}'), (gen_random_uuid(), 'warning.raised', 1, 'w2', now(), '{}')"
            )
            await conn.execute(
                "INSERT INTO care.inbox (event_id, producer, type, processed_at) VALUES"
                " (gen_random_uuid(), 'profile', 'customer.created', now() - interval '9 days')"
            )
        finally:
            await conn.close()

    async def left() -> tuple[int, int]:
        conn = await asyncpg.connect(libpq_url(infra.database_url))
        try:
            return (
                await conn.fetchval("SELECT count(*) FROM warning.outbox"),
                await conn.fetchval("SELECT count(*) FROM care.inbox"),
            )
        finally:
            await conn.close()

    asyncio.run(given())
    runner = CliRunner()

    refused = runner.invoke(app, ["events", "prune", "--older-than-days", "3"])
    assert refused.exit_code == 2 and "KEEPWELL_EVENT_RETENTION_DAYS" in refused.output
    kept_longer = runner.invoke(app, ["events", "prune", "--older-than-days", "10"])
    assert kept_longer.exit_code == 0, kept_longer.output
    assert asyncio.run(left()) == (2, 1)

    done = runner.invoke(app, ["events", "prune", "--service", "warning", "--service", "care"])
    assert done.exit_code == 0, done.output
    assert "warning: 1 events, 0 deliveries, 0 attempts, 0 inbox rows" in done.output
    assert "care: 0 events, 0 deliveries, 0 attempts, 1 inbox rows" in done.output
    assert asyncio.run(left()) == (1, 0)
