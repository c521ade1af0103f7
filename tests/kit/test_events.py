"""The event machinery: outbox, relay, idempotent consumers, dead letters, partner webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.kit.app import Resources
from services.kit.config import Settings
from services.kit.db import create_sessionmaker, session_scope
from services.kit.events import event_tables
from services.kit.events.admin import DeliveryRead, list_deliveries, replay
from services.kit.events.contracts import subscribe, unsubscribe
from services.kit.events.publish import publish, publish_many
from services.kit.events.relay import Outcome, Relay, RelayPolicy, verify_signature
from services.kit.masking import mask_numbers
from services.kit.testing import ProbeConsumer, ProbePinged, serve
from services.kit.worker import relay_events
from tests.conftest import AppClient

PROFILE = event_tables("profile")
PROBE = ProbeConsumer()  # registers as a subscriber of probe.pinged, once per process


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

    async def produce(self, events: list[tuple[str, int]]) -> None:
        async with session_scope(create_sessionmaker(self.engine)) as session:
            for aggregate, n in events:
                await publish(session, ProbePinged(n=n), aggregate_id=aggregate)

    async def statuses(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(PROFILE.delivery.c.status, func.count()).group_by(PROFILE.delivery.c.status)
            )
            return {r[0]: r[1] for r in rows}


@pytest.fixture
async def world(engine: AsyncEngine, settings: Settings) -> AsyncIterator[World]:
    await PROBE.create_tables(engine)
    PROBE.failing.clear()
    try:
        async with serve(PROBE.app(settings)) as url, httpx.AsyncClient(timeout=5) as http:
            yield World(engine, settings, url, http)
    finally:
        await PROBE.drop_tables(engine)


async def test_an_event_exists_if_and_only_if_its_transaction_commits(world: World) -> None:
    sessionmaker = create_sessionmaker(world.engine)
    with pytest.raises(RuntimeError):
        async with session_scope(sessionmaker) as session:
            await publish(session, ProbePinged(n=1), aggregate_id="A")
            raise RuntimeError("the change failed after the event was written")
    async with world.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(PROFILE.outbox)) == 0
        assert await conn.scalar(select(func.count()).select_from(PROFILE.delivery)) == 0

    await world.produce([("A", 2)])
    async with world.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(PROFILE.outbox)) == 1
        subscribers = (await conn.execute(select(PROFILE.delivery.c.subscriber))).scalars().all()
    assert subscribers == ["service:probe"]


async def test_relay_delivers_in_order_per_aggregate(world: World) -> None:
    await world.produce([(agg, n) for n in range(5) for agg in ("A", "B", "C")])
    await world.relay().run()
    applied = await PROBE.applied(world.engine)
    assert sorted(applied) == sorted((agg, n) for n in range(5) for agg in ("A", "B", "C"))
    for agg in ("A", "B", "C"):
        assert [n for a, n in applied if a == agg] == [0, 1, 2, 3, 4]
    assert await world.statuses() == {"delivered": 15}


async def test_one_relay_sends_a_service_its_next_batch_meanwhile_and_keeps_each_order(
    world: World,
) -> None:
    events = [(f"agg-{i % 20}", i) for i in range(300)]
    await world.produce(events)
    assert await world.relay(batch_size=10, service_passes=2).run() == 300
    applied = await PROBE.applied(world.engine)
    assert sorted(applied) == sorted(events)
    for i in range(20):
        numbers = [n for a, n in applied if a == f"agg-{i}"]
        assert numbers == sorted(numbers), f"agg-{i} applied out of order"


class DiesAfterDelivering(Relay):
    """A relay process that dies after the subscriber answered, before it could record it."""

    async def _record(self, session: AsyncSession, *args: object) -> None:
        raise SystemExit("killed")


async def test_a_relay_killed_before_marking_redelivers_and_the_consumer_ignores_it(
    world: World,
) -> None:
    await world.produce([("A", 1), ("B", 2)])
    dying = DiesAfterDelivering(
        "profile", create_sessionmaker(world.engine), world.http, world.settings,
        service_url=lambda _: world.probe_url,
    )  # fmt: skip
    with pytest.raises(SystemExit):
        await dying.run()
    assert sorted(await PROBE.applied(world.engine)) == [("A", 1), ("B", 2)]
    assert await world.statuses() == {"pending": 2}

    await world.relay().run()
    assert sorted(await PROBE.applied(world.engine)) == [("A", 1), ("B", 2)]
    assert await world.statuses() == {"delivered": 2}


async def test_two_relays_at_once_apply_every_event_exactly_once_in_order(world: World) -> None:
    events = [(f"agg-{i % 150}", i) for i in range(600)]
    await world.produce(events)
    first, second = world.relay(batch_size=25), world.relay(batch_size=25)
    delivered = await asyncio.gather(first.run(), second.run())
    assert sum(delivered) == 600
    assert all(d > 0 for d in delivered), "both relays should have taken part"
    applied = await PROBE.applied(world.engine)
    assert sorted(applied) == sorted(events)
    for i in range(150):
        numbers = [n for a, n in applied if a == f"agg-{i}"]
        assert numbers == sorted(numbers)


async def test_a_consumer_that_was_down_gets_the_backlog_in_order(world: World) -> None:
    world.urls["probe"] = "http://127.0.0.1:1"  # nobody listens there
    await world.produce([("A", n) for n in range(3)] + [("B", 10)])
    await world.relay(base_backoff_seconds=60).run()
    assert await PROBE.applied(world.engine) == []
    rows = await _deliveries(world)
    assert {r.status for r in rows} == {"pending"}
    # All four went in one request that failed: one attempt each, all still pending.
    assert sorted(r.attempts for r in rows) == [1, 1, 1, 1]

    del world.urls["probe"]
    async with world.engine.begin() as conn:  # the back-off has passed
        await conn.execute(PROFILE.delivery.update().values(next_attempt_at=func.now()))
    await world.relay().run()
    applied = await PROBE.applied(world.engine)
    assert [n for a, n in applied if a == "A"] == [0, 1, 2]
    assert ("B", 10) in applied


async def _deliveries(world: World) -> list[DeliveryRead]:
    async with session_scope(create_sessionmaker(world.engine)) as session:
        return await list_deliveries(session, "profile")


async def test_a_failing_event_goes_dead_after_max_attempts_and_replay_delivers_it(
    world: World,
) -> None:
    PROBE.failing.add(1)
    await world.produce([("A", 1), ("B", 2)])
    relay = world.relay(max_attempts=2, base_backoff_seconds=0)
    await relay.run()
    dead = [d for d in await _deliveries(world) if d.status == "dead"]
    assert len(dead) == 1 and dead[0].attempts == 2
    assert "probe told to fail on 1" in (dead[0].last_error or "")
    assert await PROBE.applied(world.engine) == [("B", 2)]

    PROBE.failing.clear()  # the consumer is fixed; an operator replays the dead letter
    async with session_scope(create_sessionmaker(world.engine)) as session:
        producer, number = dead[0].id.split(":")
        await replay(session, producer, int(number))
    await relay.run()
    assert sorted(await PROBE.applied(world.engine)) == [("A", 1), ("B", 2)]
    assert await world.statuses() == {"delivered": 2}


async def test_an_operator_discards_a_dead_delivery_and_the_relay_leaves_it_be(
    world: World, app_client: AppClient
) -> None:
    from services.profile.app import create_app

    PROBE.failing.add(1)
    await world.produce([("A", 1)])
    relay = world.relay(max_attempts=1, base_backoff_seconds=0)
    await relay.run()
    [dead] = await _deliveries(world)
    assert dead.status == "dead"
    app = create_app(world.settings)
    path = f"/events/deliveries/{dead.id}/discard"
    async with app_client(app, role="manager") as manager:
        assert (await manager.post(path, json={"reason": "x"})).status_code == 403
    async with app_client(app, role="operator", user="op-wang") as operator:
        blank = await operator.post(path, json={"reason": ""})
        discarded = await operator.post(path, json={"reason": "合作方系统已下线"})
        again = await operator.post(path, json={"reason": "合作方系统已下线"})
    assert (blank.status_code, blank.json()["field"]) == (422, "reason")
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["status"] == "discarded"
    assert discarded.json()["discarded_by"] == "op-wang"
    assert discarded.json()["discard_reason"] == "合作方系统已下线"
    assert again.status_code == 409

    PROBE.failing.clear()
    await relay.run()
    assert await PROBE.applied(world.engine) == []  # given up on: not sent again
    async with session_scope(create_sessionmaker(world.engine)) as session:
        producer, number = dead.id.split(":")
        replayed = await replay(session, producer, int(number))  # unless replayed
    assert (replayed.status, replayed.discarded_by) == ("pending", None)
    await relay.run()
    assert await PROBE.applied(world.engine) == [("A", 1)]


@dataclass
class Receiver:
    """A partner's webhook endpoint: answers 500 to the first request, then 200."""

    secret: str = ""
    received: list[dict[str, object]] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.calls += 1
            body = await request.body()
            if self.calls == 1:
                return Response(status_code=500)
            self.valid.append(verify_signature(self.secret, request.headers, body))
            self.received.append(json.loads(body))
            return Response(status_code=204)

        return app


async def test_a_partner_webhook_gets_each_subscribed_event_once_signed_even_after_a_500(
    world: World, app_client: AppClient
) -> None:
    from services.profile.app import create_app

    receiver = Receiver()
    async with serve(receiver.app()) as partner_url:
        async with app_client(create_app(world.settings), role="admin") as admin:
            created = await admin.post(
                "/webhooks",
                json={
                    "partner": "crm-x",
                    "url": f"{partner_url}/hook",
                    "event_types": ["probe.pinged"],
                },
            )
            assert created.status_code == 201, created.text
            hook = created.json()
            receiver.secret = hook["secret"]
            bad = await admin.post(
                "/webhooks",
                json={"partner": "crm-x", "url": f"{partner_url}/hook", "event_types": ["nope"]},
            )
            assert bad.status_code == 422 and bad.json()["field"] == "event_types"

        await world.produce([("A", 1), ("A", 2)])
        relay = world.relay(base_backoff_seconds=0)
        await relay.run()
        await relay.run()  # the retry after the partner's 500
        assert [e["payload"] for e in receiver.received] == [{"n": 1}, {"n": 2}]
        assert receiver.valid == [True, True]
        assert receiver.calls == 3

        async with app_client(create_app(world.settings), role="partner", user="crm-x") as partner:
            log = await partner.get(f"/webhooks/{hook['id']}/deliveries")
            assert log.status_code == 200
            assert [(d["status"], d["attempts"]) for d in log.json()] == [
                ("delivered", 1),
                ("delivered", 2),
            ]
            first = log.json()[1]["id"]
            replayed = await partner.post(f"/webhooks/{hook['id']}/deliveries/{first}/replay")
            assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
        async with app_client(
            create_app(world.settings), role="partner", user="someone-else"
        ) as other:
            denied = await other.get(f"/webhooks/{hook['id']}/deliveries")
            assert denied.status_code == 403
        await relay.run()
        assert [e["payload"] for e in receiver.received] == [{"n": 1}, {"n": 2}, {"n": 1}]


def test_signatures_outside_the_replay_window_or_tampered_are_rejected() -> None:
    from services.kit.events.relay import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    body = b'{"n": 1}'
    headers = {TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign("s3cret", "1000", body)}
    assert verify_signature("s3cret", headers, body, now=1100)
    assert not verify_signature("s3cret", headers, body, now=1000 + 301)
    assert not verify_signature("s3cret", headers, b'{"n": 2}', now=1100)
    assert not verify_signature("other", headers, body, now=1100)


async def test_publish_many_writes_every_event_in_order_with_its_deliveries(world: World) -> None:
    events = [(ProbePinged(n=n), f"agg-{n % 3}") for n in range(12)]
    async with session_scope(create_sessionmaker(world.engine)) as session:
        ids = await publish_many(session, events)
    assert len(set(ids)) == 12
    async with world.engine.connect() as conn:
        rows = await conn.execute(select(PROFILE.outbox.c.id).order_by(PROFILE.outbox.c.seq))
        assert [r.id for r in rows] == ids
    await world.relay().run()
    applied = await PROBE.applied(world.engine)
    for k in range(3):
        assert [n for a, n in applied if a == f"agg-{k}"] == list(range(k, 12, 3))


async def test_a_delivery_backing_off_holds_back_only_its_own_aggregate(world: World) -> None:
    await world.produce([("A", 1), ("A", 2), ("B", 3)])
    async with world.engine.begin() as conn:  # A's first event failed and waits a while
        first = await conn.scalar(select(func.min(PROFILE.outbox.c.seq)))
        await conn.execute(
            PROFILE.delivery.update()
            .where(PROFILE.delivery.c.event_seq == first)
            .values(attempts=1, next_attempt_at=func.now() + timedelta(hours=1))
        )
    await world.relay().run()
    assert await PROBE.applied(world.engine) == [("B", 3)]  # A2 waits behind A1


@dataclass
class SlowPartner:
    """A partner's webhook endpoint that takes seconds per event."""

    seconds: float = 2.0
    received: list[int] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            await asyncio.sleep(self.seconds)
            self.received.append(json.loads(await request.body())["payload"]["n"])
            return Response(status_code=204)

        return app


def garbage_service() -> FastAPI:
    """A subscriber whose POST /events answers 200 with something that is not a result."""
    app = FastAPI()

    @app.post("/events")
    async def events() -> Response:
        return Response("<html>upstream hiccup</html>", status_code=200, media_type="text/html")

    return app


async def _wait_until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{what} took over {seconds}s"
        await asyncio.sleep(0.05)


async def test_a_slow_partner_and_a_garbage_answer_hold_back_only_their_own_deliveries(
    world: World, app_client: AppClient
) -> None:
    from services.profile.app import create_app

    partner = SlowPartner()
    subscribe("garbage", frozenset({ProbePinged.event_type}))
    try:
        async with serve(partner.app()) as partner_url, serve(garbage_service()) as garbage_url:
            world.urls["garbage"] = garbage_url
            async with app_client(create_app(world.settings), role="admin") as admin:
                created = await admin.post(
                    "/webhooks",
                    json={"partner": "slow", "url": f"{partner_url}/hook",
                          "event_types": ["probe.pinged"]},
                )  # fmt: skip
                assert created.status_code == 201, created.text
            await world.produce([("A", n) for n in range(8)])
            relay = world.relay(
                webhook_round_seconds=1.5, base_backoff_seconds=60, poll_seconds=0.1
            )
            running = asyncio.create_task(relay.run())

            async def probe_has(count: int) -> bool:
                return len(await PROBE.applied(world.engine)) >= count

            # The probe service gets its events at once, while the partner takes 16 s...
            await _wait_until(lambda: probe_has(8), 6, "the probe's first events")
            assert not running.done() and len(partner.received) < 8
            # ... and what is published meanwhile flows to it too.
            await world.produce([("B", 100 + n) for n in range(3)])
            await _wait_until(lambda: probe_has(11), 6, "the probe's later events")
            assert not running.done(), running  # no exception rolled anything back
            assert len(partner.received) < 11

            async def garbage_rows() -> list[Any]:
                async with world.engine.connect() as conn:
                    return list(
                        await conn.execute(
                            select(PROFILE.delivery).where(
                                PROFILE.delivery.c.subscriber == "service:garbage"
                            )
                        )
                    )

            async def garbage_tried() -> bool:
                return all(r.attempts > 0 for r in await garbage_rows())

            await _wait_until(garbage_tried, 6, "the garbage answers' attempts")
            garbage = await garbage_rows()
            async with world.engine.connect() as conn:
                logged = await conn.scalar(
                    select(func.count())
                    .select_from(PROFILE.attempt)
                    .join(PROFILE.delivery, PROFILE.delivery.c.id == PROFILE.attempt.c.delivery_id)
                    .where(
                        PROFILE.delivery.c.subscriber == "service:garbage",
                        PROFILE.attempt.c.status_code == 200,
                    )
                )
            # The garbage answer is a failed attempt of each event sent, backing off.
            assert len(garbage) == 11
            assert {(r.status, r.attempts) for r in garbage} == {("pending", 1)}
            assert all("malformed answer" in (r.last_error or "") for r in garbage)
            assert logged == 11

            await _wait_until(lambda: _true(len(partner.received) >= 2), 10, "the partner")
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
    finally:
        unsubscribe("garbage")
    assert partner.received == sorted(partner.received)  # in order per aggregate
    async with world.engine.connect() as conn:  # a stopped relay gives its claims back
        claimed = await conn.scalar(
            select(func.count())
            .select_from(PROFILE.delivery)
            .where(PROFILE.delivery.c.claim.is_not(None))
        )
    assert claimed == 0


async def _true(value: bool) -> bool:
    return value


async def test_a_crashed_relays_claim_expires_and_another_relay_takes_the_rows_again(
    world: World,
) -> None:
    await world.produce([("A", 1), ("B", 2)])
    crashed = world.relay()
    claimed = await crashed._claim(set())  # then the process died: nothing delivered
    assert sum(len(items) for items in claimed.values()) == 2

    other = world.relay()
    assert await other.run() == 0  # the rows are the crashed relay's until its lease ends
    assert await PROBE.applied(world.engine) == []

    async with world.engine.begin() as conn:  # the lease runs out
        await conn.execute(
            PROFILE.delivery.update().values(leased_until=func.now() - timedelta(seconds=1))
        )
    assert await other.run() == 2
    assert sorted(await PROBE.applied(world.engine)) == [("A", 1), ("B", 2)]

    # The crashed relay's late outcome no longer counts: the rows are not held by its claim.
    items = [item for group in claimed.values() for item in group]
    async with session_scope(create_sessionmaker(world.engine)) as session:
        await crashed._record(
            session, items, {i.delivery_id: Outcome(False, error="late") for i in items}
        )
    rows = await _deliveries(world)
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1), ("delivered", 1)]


async def test_a_partner_sees_customer_numbers_masked_in_payloads_and_its_delivery_log(
    world: World, app_client: AppClient
) -> None:
    from services.profile.app import create_app

    received: list[dict[str, object]] = []
    partner = FastAPI()

    @partner.post("/hook")
    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=204)

    unmasked = world.settings.model_copy(update={"partners_unmasked": ["crm-trusted"]})
    async with serve(partner) as partner_url:
        async with app_client(create_app(world.settings), role="admin") as admin:
            hooks = []
            for who in ("crm-x", "crm-trusted"):
                body = {
                    "partner": who,
                    "url": f"{partner_url}/hook",
                    "event_types": ["probe.pinged"],
                }
                hooks.append((await admin.post("/webhooks", json=body)).json())
        await world.produce([("13812345678", 1)])
        await Relay(
            "profile", create_sessionmaker(world.engine), world.http, unmasked,
            service_url=lambda _: world.probe_url,
        ).run()  # fmt: skip
        async with app_client(create_app(world.settings), role="partner", user="crm-x") as crm:
            log = (await crm.get(f"/webhooks/{hooks[0]['id']}/deliveries")).json()

    assert sorted(str(e["aggregate_id"]) for e in received) == ["138****5678", "13812345678"]
    assert [d["aggregate_id"] for d in log] == ["138****5678"]


def test_masking_reaches_numbers_however_deep_they_sit() -> None:
    payload = {
        "customer": {"msisdn": "13812345678", "name": "王建国", "version": 3},
        "contact": {"msisdn": "13912345678", "note": "客户回电 4001234567"},
        "ids": ["13712345678", "not-a-number"],
    }
    assert mask_numbers(payload) == {
        "customer": {"msisdn": "138****5678", "name": "王建国", "version": 3},
        "contact": {"msisdn": "139****5678", "note": "客户回电 4001234567"},
        "ids": ["137****5678", "not-a-number"],
    }


class ProbeSettings(Settings):
    """Settings that know where the probe consumer listens, as a worker knows our services."""

    probe_url: str | None = None


async def test_a_worker_relays_one_run_at_a_time_and_a_nudge_meanwhile_asks_it_to_look_again(
    world: World,
) -> None:
    await world.produce([(f"agg-{i % 7}", i) for i in range(120)])
    settings = ProbeSettings(**world.settings.model_dump(), probe_url=world.probe_url)
    resources = Resources.open("profile", settings)
    try:
        # The sweep and a nudge at the same moment (arq gives each job a context of its
        # own): the first runs, the second only asks it to look once more, so no second run
        # sends batches to the probe meanwhile.
        first, second = await asyncio.gather(
            relay_events({"resources": resources}), relay_events({"resources": resources})
        )
        assert (first, second) == (120, 0)
        assert sorted(n for _, n in await PROBE.applied(world.engine)) == list(range(120))
        # The run is over: the next nudge runs again.
        await world.produce([("agg-0", 120)])
        assert await relay_events({"resources": resources}) == 1
    finally:
        await resources.close()
