"""The gateway over the four services, each served over real HTTP in this process, with the
demo world loaded the way `keepwell run` loads it: profile's events delivered by its relay,
detection run over the demo's usage, today's care planned."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.identity import development_token
from keepwell.seed import load_demo
from services.care.automatic import plan_day
from services.care.config import get_care_settings
from services.kit import clock
from services.kit.app import Resources
from services.kit.auth import Principal, Role
from services.kit.config import SERVICES, Settings
from services.kit.db import libpq_url
from services.kit.events.relay import Relay
from services.kit.keys import generate
from services.kit.testing import serve
from services.warning.service import run_detection

GATEWAY = GatewaySettings(jwt_secret=SecretStr("gateway-test-secret-of-32-bytes-or-more"))


@dataclass
class Running:
    """The four services, each on a port of its own; one can be stopped mid-test."""

    urls: dict[str, str]
    stacks: dict[str, AsyncExitStack]

    async def stop(self, service: str) -> None:
        await self.stacks[service].aclose()


@pytest.fixture
async def services_running(settings: Settings) -> AsyncIterator[Running]:
    running = Running({}, {})
    try:
        for service in SERVICES:
            stack = running.stacks[service] = AsyncExitStack()
            app = importlib.import_module(f"services.{service}.app").create_app(settings)
            running.urls[service] = await stack.enter_async_context(serve(app))
        yield running
    finally:
        for stack in running.stacks.values():
            await stack.aclose()


@pytest.fixture
def routed(settings: Settings, services_running: Running) -> Settings:
    return settings.model_copy(update={f"{s}_url": u for s, u in services_running.urls.items()})


async def deliver_events(settings: Settings) -> None:
    """Run every producer's relay until nothing is due, as the workers would."""
    for producer in SERVICES:
        resources = Resources.open(producer, settings)
        try:
            await Relay(producer, resources.sessionmaker, resources.http, settings).run()
        finally:
            await resources.close()


@pytest.fixture
async def demo(routed: Settings) -> Settings:
    await load_demo(routed, customers=60)
    await deliver_events(routed)
    warning = Resources.open("warning", routed)
    try:
        async with warning.session() as session:
            await run_detection(session, clock.today() - timedelta(days=1))
    finally:
        await warning.close()
    care = Resources.open("care", routed)
    try:
        async with care.session() as session:
            await plan_day(session, clock.today(), get_care_settings())
    finally:
        await care.close()
    await deliver_events(routed)
    return routed


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


GraphQL = Callable[..., Any]


@pytest.fixture
async def gateway(routed: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway(routed, GATEWAY)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def bearer(role: str, user: str = "someone", team: str | None = None, **kw: Any) -> dict[str, str]:
    principal = Principal(user_id=user, role=Role(role), team_id=team)
    token = development_token(principal, GATEWAY, Settings(), kw.get("ttl", 300))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def graphql(gateway: httpx.AsyncClient) -> GraphQL:
    """``await graphql(query, role=..., user=..., team=..., **variables)`` -> the JSON body."""

    async def ask(
        query: str,
        role: str | None = "admin",
        user: str = "someone",
        team: str | None = None,
        **variables: Any,
    ) -> dict[str, Any]:
        headers = bearer(role, user, team) if role else {}
        response = await gateway.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        return body

    return ask


@asynccontextmanager
async def gateway_client(
    settings: Settings, gateway: GatewaySettings = GATEWAY
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app of its own (other settings than the ``gateway`` fixture's), in process;
    the services need not run for what the edge refuses before any call."""
    app = create_gateway(settings, gateway)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def production(settings: Settings) -> Settings:
    """The same settings as a production gateway would have them (its own key pairs)."""
    signing, public = generate()
    update: dict[str, Any] = {
        "env": "production",
        "user_signing_key": SecretStr(signing),
        "user_public_key": public,
        "relay_public_key": generate()[1],
        "rebuild_public_key": generate()[1],
    }
    return settings.model_copy(update=update)
