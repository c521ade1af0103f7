"""Rate limits in Redis: a token bucket per caller (person, API key, address) charged by each
operation's cost and shared by every gateway replica; 429 with Retry-After past it, the
budget in the headers of every answer, partners' own limits, open when Redis is not.

The buckets read a clock the tests set (in production Redis's own), so refill is tested by
moving it, never by sleeping."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from graphql import parse
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gateway import apikeys
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.http import GRAPHQL_RESPONSE
from gateway.limits import measure
from gateway.ratelimit import RateLimiter
from gateway.schema import schema
from services.kit.config import Settings
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.testing import Infra
from tests.gateway.conftest import GATEWAY, bearer

VIEWER = {"query": "{ viewer { userId } }"}
"""Costs 2, so it is charged the minimum (10)."""
TYPENAME = {"query": "{ __typename }"}
API_KEYS = "{ apiKeys { id partnerId name scopes createdBy } }"
"""An admin's costly read that needs no service: a list of 50 (assumed) objects."""


class Clock:
    """The buckets' clock, moved by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient


def limits(**changes: Any) -> GatewaySettings:
    return GATEWAY.model_copy(update={"rate_user_per_minute": 100, **changes})


@asynccontextmanager
async def running(
    settings: Settings, gateway: GatewaySettings, clock: Clock | None
) -> AsyncIterator[Gateway]:
    """A gateway app of its own; its buckets read ``clock``."""
    app = create_gateway(settings, gateway)
    async with LifespanManager(app) as manager:
        if clock is not None:
            app.state.rate_limiter.clock = clock
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(app, client)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def gateway(settings: Settings, clock: Clock) -> AsyncIterator[Gateway]:
    async with running(settings, limits(), clock) as gateway:
        yield gateway


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def spend(
    client: httpx.AsyncClient, times: int, operation: dict[str, str] = VIEWER, **headers: str
) -> list[httpx.Response]:
    return [await client.post("/graphql", json=operation, headers=headers) for _ in range(times)]


class TestABurstOverTheLimit:
    async def test_is_refused_with_429_retry_after_and_the_time_to_retry(
        self, gateway: Gateway, clock: Clock
    ) -> None:
        me = bearer("manager", "M0001", "T001")
        allowed = await spend(gateway.client, 10, **me)  # 10 x 10 = the whole minute
        assert [r.status_code for r in allowed] == [200] * 10
        assert all("errors" not in r.json() for r in allowed)

        refused = await gateway.client.post("/graphql", json=VIEWER, headers=me)
        assert refused.status_code == 429
        # 10 more at 100 a minute: 6 seconds.
        assert refused.headers["retry-after"] == "6"
        assert refused.headers["ratelimit-remaining"] == "0"
        body = refused.json()
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] == 6
        assert error["extensions"]["cost"] == 10

        # So does a client that asked for graphql-response+json (no 400 for it).
        strict = await gateway.client.post(
            "/graphql", json=VIEWER, headers={**me, "accept": GRAPHQL_RESPONSE}
        )
        assert strict.status_code == 429
        assert code_of(strict) == "RATE_LIMITED"

        # Others have buckets of their own.
        other = await gateway.client.post("/graphql", json=VIEWER, headers=bearer("admin"))
        assert other.status_code == 200

    async def test_runs_again_once_the_bucket_has_refilled(
        self, gateway: Gateway, clock: Clock
    ) -> None:
        me = bearer("operator")
        await spend(gateway.client, 10, **me)
        refused = await gateway.client.post("/graphql", json=VIEWER, headers=me)
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])

        clock.now += wait - 1
        assert (await gateway.client.post("/graphql", json=VIEWER, headers=me)).status_code == 429
        clock.now += 1
        again = await gateway.client.post("/graphql", json=VIEWER, headers=me)
        assert again.status_code == 200
        assert "errors" not in again.json()

        # A whole minute fills the bucket, no more.
        clock.now += 3600
        after_an_hour = await spend(gateway.client, 11, **me)
        assert [r.status_code for r in after_an_hour] == [200] * 10 + [429]

    async def test_a_refused_operation_is_not_run(self, gateway: Gateway) -> None:
        me = bearer("admin")
        await spend(gateway.client, 10, **me)
        created = await gateway.client.post(
            "/graphql",
            json={
                "query": 'mutation { createApiKey(partnerId: "p", name: "n", scopes: '
                '["customers:read"]) { __typename } }'
            },
            headers=me,
        )
        assert created.status_code == 429
        async with session_scope(gateway.app.state.clients.sessionmaker) as session:
            assert await apikeys.listed(session) == []


class TestBudgetHeaders:
    async def test_every_charged_answer_carries_the_budget(self, gateway: Gateway) -> None:
        response = await gateway.client.post("/graphql", json=VIEWER, headers=bearer("admin"))
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "100"
        assert response.headers["ratelimit-remaining"] == "90"
        assert response.headers["ratelimit-reset"] == "6"  # 10 back at 100 a minute
        assert response.headers["ratelimit-policy"] == "100;w=60"
        assert "retry-after" not in response.headers

    async def test_browsers_may_read_them(self, settings: Settings, clock: Clock) -> None:
        gateway = limits(cors_origins=["https://app.example"])
        async with running(settings, gateway, clock) as g:
            response = await g.client.post(
                "/graphql",
                json=VIEWER,
                headers={**bearer("admin"), "origin": "https://app.example"},
            )
        exposed = response.headers["access-control-expose-headers"].lower()
        for header in ("ratelimit-remaining", "ratelimit-reset", "retry-after"):
            assert header in exposed

    async def test_an_operation_refused_by_the_limits_is_not_charged(
        self, gateway: Gateway
    ) -> None:
        too_deep = "{ viewer { " * 12 + "userId" + " }" * 12
        refused = await gateway.client.post(
            "/graphql", json={"query": too_deep}, headers=bearer("admin")
        )
        assert "ratelimit-remaining" not in refused.headers
        after = await gateway.client.post("/graphql", json=VIEWER, headers=bearer("admin"))
        assert after.headers["ratelimit-remaining"] == "90"

    async def test_no_headers_when_the_limits_are_off(self, settings: Settings) -> None:
        async with running(settings, limits(rate_limits=False), None) as g:
            responses = await spend(g.client, 20, **bearer("admin"))
        assert {r.status_code for r in responses} == {200}
        assert "ratelimit-limit" not in responses[-1].headers


class TestCost:
    async def test_costly_operations_drain_the_bucket_faster_than_cheap_ones(
        self, settings: Settings, clock: Clock
    ) -> None:
        cost = measure(schema._schema, parse(API_KEYS))[""].cost
        assert cost > 200
        admin = bearer("admin")
        async with running(settings, limits(rate_user_per_minute=10_000), clock) as g:
            cheap = await g.client.post("/graphql", json=VIEWER, headers=admin)
            costly = await g.client.post("/graphql", json={"query": API_KEYS}, headers=admin)
        assert "errors" not in costly.json()
        assert int(cheap.headers["ratelimit-remaining"]) == 10_000 - 10
        assert int(costly.headers["ratelimit-remaining"]) == 10_000 - 10 - cost

    async def test_an_operation_costlier_than_the_bucket_needs_it_full(
        self, settings: Settings, clock: Clock
    ) -> None:
        admin = bearer("admin")
        async with running(settings, limits(rate_user_per_minute=60), clock) as g:
            first = await g.client.post("/graphql", json={"query": API_KEYS}, headers=admin)
            assert first.status_code == 200
            assert first.headers["ratelimit-remaining"] == "0"
            second = await g.client.post("/graphql", json={"query": API_KEYS}, headers=admin)
            assert second.status_code == 429
            assert second.headers["retry-after"] == "60"
            clock.now += 60
            third = await g.client.post("/graphql", json={"query": API_KEYS}, headers=admin)
            assert third.status_code == 200


class TestReplicas:
    async def test_two_gateways_on_one_redis_share_each_callers_bucket(
        self, settings: Settings, clock: Clock
    ) -> None:
        me = bearer("supervisor", "S01", "T001")
        async with (
            running(settings, limits(), clock) as one,
            running(settings, limits(), clock) as two,
        ):
            assert one.app.state.rate_limiter is not two.app.state.rate_limiter
            seen = []
            for i in range(10):
                replica = one if i % 2 else two
                response = await replica.client.post("/graphql", json=VIEWER, headers=me)
                seen.append((response.status_code, response.headers["ratelimit-remaining"]))
            assert seen == [(200, str(90 - 10 * i)) for i in range(10)]
            assert (await one.client.post("/graphql", json=VIEWER, headers=me)).status_code == 429
            assert (await two.client.post("/graphql", json=VIEWER, headers=me)).status_code == 429


async def make_key(database_url: str, rate: int | None = None) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, key = await apikeys.create(
                session,
                partner_id="bss",
                name="feed",
                scopes=["customers:read"],
                created_by="test",
                rate_per_minute=rate,
            )
    finally:
        await engine.dispose()
    return key


class TestPartners:
    async def test_a_key_with_its_own_limit_is_held_to_it(
        self, settings: Settings, infra: Infra, clock: Clock
    ) -> None:
        own = await make_key(infra.database_url, rate=50)
        default = await make_key(infra.database_url)
        gateway = limits(rate_partner_per_minute=1000)
        async with running(settings, gateway, clock) as g:
            responses = await spend(g.client, 6, TYPENAME, **{"X-API-Key": own})
            assert [r.status_code for r in responses] == [200] * 5 + [429]
            assert responses[0].headers["ratelimit-limit"] == "50"
            assert responses[-1].headers["retry-after"] == "12"  # 10 at 50 a minute

            others = await spend(g.client, 6, TYPENAME, **{"X-API-Key": default})
            assert {r.status_code for r in others} == {200}
            assert others[0].headers["ratelimit-limit"] == "1000"

    async def test_partners_have_tighter_defaults_than_people(self) -> None:
        defaults = GatewaySettings()
        assert defaults.rate_partner_per_minute < defaults.rate_user_per_minute
        assert defaults.rate_anonymous_per_minute < defaults.rate_partner_per_minute
        # A person's minute holds the costliest tested query many times over.
        assert defaults.rate_user_per_minute > 20 * 21_700

    async def test_callers_without_a_token_share_their_address_bucket(
        self, settings: Settings, clock: Clock
    ) -> None:
        async with running(settings, limits(rate_anonymous_per_minute=30), clock) as g:
            codes = [r.status_code for r in await spend(g.client, 4, TYPENAME)]
        assert codes == [200, 200, 200, 429]

    def test_an_admin_sets_a_keys_rate_on_the_command_line(self, infra: Infra) -> None:
        env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}

        def keepwell(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "keepwell", "apikey", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        made = keepwell("create", "--partner", "bss", "--scope", "customers:read", "--rate", "42")
        assert made.returncode == 0, made.stderr
        info = made.stdout.splitlines()[0]
        assert "rate 42" in info
        key_id = info.split()[1]
        assert f"{key_id}  bss  customers:read  active  rate 42" in keepwell("list").stdout

        assert keepwell("set-rate", key_id, "7000").returncode == 0
        assert "rate 7000" in keepwell("list").stdout
        assert keepwell("set-rate", key_id, "0").returncode == 0
        assert "rate default" in keepwell("list").stdout

        bad = keepwell("create", "--partner", "bss", "--scope", "customers:read", "--rate", "-1")
        assert bad.returncode == 2
        assert bad.stderr.startswith("error: rate：")


class TestRedisUnavailable:
    async def test_the_gateway_answers_unlimited_and_says_so(self, settings: Settings) -> None:
        down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
        lines: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = lines.append  # type: ignore[method-assign]
        logger = logging.getLogger("keepwell.gateway.ratelimit")
        logger.addHandler(handler)
        before = unavailable()
        try:
            async with running(down, limits(), None) as g:
                responses = await spend(g.client, 15, **bearer("admin"))
        finally:
            logger.removeHandler(handler)
        assert {r.status_code for r in responses} == {200}
        assert all("errors" not in r.json() for r in responses)
        assert "ratelimit-limit" not in responses[0].headers
        assert unavailable() - before == 15
        warnings = [r for r in lines if "rate limits not enforced" in r.getMessage()]
        assert len(warnings) == 1  # one line, not one per request


def unavailable() -> float:
    return REGISTRY.get_sample_value("keepwell_gateway_rate_limit_unavailable_total") or 0.0


class TestTheBucket:
    async def test_refills_continuously_up_to_its_size_and_expires(self, redis: Redis) -> None:
        clock = Clock()
        limiter = RateLimiter(redis, min_cost=1, clock=clock)
        key = "keepwell:gateway:rate:test:bucket"

        first = await limiter.take(key, 60, 45)  # 60 a minute: 1 a second
        assert first is not None
        assert (first.allowed, first.remaining, first.reset) == (True, 15, 45)
        short = await limiter.take(key, 60, 20)
        assert short is not None
        assert (short.allowed, short.remaining, short.retry_after) == (False, 15, 5)

        clock.now += 5
        now_fits = await limiter.take(key, 60, 20)
        assert now_fits is not None
        assert (now_fits.allowed, now_fits.remaining) == (True, 0)

        ttl = await redis.ttl(key)
        assert 0 < ttl <= 61  # gone once it would be full again

        clock.now -= 30  # a clock going back refills nothing
        behind = await limiter.take(key, 60, 1)
        assert behind is not None and not behind.allowed

    async def test_uses_redis_time_without_a_clock(self, redis: Redis) -> None:
        limiter = RateLimiter(redis, min_cost=1)
        key = "keepwell:gateway:rate:test:server-time"
        decision = await limiter.take(key, 600, 100)
        assert decision is not None and decision.allowed
        assert decision.remaining == 500
        stored = await redis.hgetall(key)
        assert abs(float(stored[b"at"]) - float((await redis.time())[0])) < 5
