"""Idempotency-Key on create routes (services/kit/idempotency.py): a retried POST answers the
first result and creates nothing new; the key is the caller's, on one route, for a day.

The mechanism is driven through a probe service in a schema of its own (a table of
"things" and the kernel's key table), on the real database; each service's own create
routes are tested in its folder (``test_*_idempotent_*``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Identity, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock
from services.kit.access import EVERYONE
from services.kit.app import Idempotent, Resources, Session, create_service_app, idempotent_routes
from services.kit.audit import change_audit_table
from services.kit.auth import Acting
from services.kit.config import SERVICES, Settings
from services.kit.errors import InvalidInput
from services.kit.idempotency import IdempotentRoute, idempotency_table
from services.kit.worker import prune_idempotency_keys, worker_settings

SCHEMA = "idem_probe"
THINGS = Table(
    "thing",
    MetaData(),
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("by", String(64), nullable=False),
    schema=SCHEMA,
)
KEYS = idempotency_table(SCHEMA)
CHANGES = change_audit_table(SCHEMA)
T0 = datetime(2031, 5, 6, 2, 0, tzinfo=UTC)  # a fixed instant: no test depends on its day


class ThingIn(BaseModel):
    name: str


class Holds:
    """Lets a test keep one request inside its transaction until it says so."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None


def probe_app(settings: Settings, holds: Holds) -> FastAPI:
    router = APIRouter(route_class=IdempotentRoute)

    @router.post("/things", status_code=201, dependencies=[Idempotent])
    async def create_thing(
        body: ThingIn, session: Session, who: Acting, response: Response, tag: str = ""
    ) -> dict[str, Any]:
        if body.name == "bad":
            raise InvalidInput("名称不可用", field="name")
        thing = await session.scalar(
            THINGS.insert().values(name=body.name, by=who.user_id).returning(THINGS.c.id)
        )
        release = holds.release
        if release is not None:
            holds.entered.set()
            await release.wait()
        if body.name == "boom":
            raise RuntimeError("the route fails after writing")
        response.headers["Location"] = f"/things/{thing}"
        return {"id": thing, "name": body.name, "tag": tag}

    return create_service_app(
        SCHEMA,
        title="idempotency probe",
        description="",
        routers=[router],
        settings=settings,
        roles={("POST", "/things"): EVERYONE},
    )


Probe = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def holds() -> Holds:
    return Holds()


@pytest.fixture
async def probe(
    engine: AsyncEngine, settings: Settings, token: Callable[..., str], holds: Holds
) -> AsyncIterator[Probe]:
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(THINGS.create)
        await conn.run_sync(KEYS.create)
        await conn.run_sync(CHANGES.create)
    app = probe_app(settings, holds)
    async with LifespanManager(app) as manager:
        # A 500 comes back as an answer, as a server would send it, not as an exception.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)

        @asynccontextmanager
        async def client(
            role: str = "manager", user: str = "M1", team: str | None = "T1"
        ) -> AsyncIterator[httpx.AsyncClient]:
            headers = {"Authorization": f"Bearer {token(role, user=user, team=team)}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://probe", headers=headers
            ) as c:
                yield c

        yield client
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


async def things(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(THINGS)) or 0)


async def keys(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(KEYS)) or 0)


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def test_a_retry_with_the_same_key_answers_the_first_result_and_creates_nothing(
    probe: Probe, engine: AsyncEngine
) -> None:
    async with probe() as client:
        first = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        again = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        other = await client.post("/things", json={"name": "甲"}, headers=key("k-2"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert await things(engine) == 2
    # The replay changed nothing, so the change audit has the two creates only.
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(CHANGES)) == 2


async def test_without_a_key_every_post_creates(probe: Probe, engine: AsyncEngine) -> None:
    async with probe() as client:
        for _ in range(2):
            assert (await client.post("/things", json={"name": "甲"})).status_code == 201
    assert await things(engine) == 2 and await keys(engine) == 0


@pytest.mark.parametrize(
    ("body", "tag"), [({"name": "乙"}, ""), ({"name": "甲"}, "other"), ({"name": "甲 "}, "")]
)
async def test_the_same_key_for_another_request_is_refused_naming_the_header(
    probe: Probe, engine: AsyncEngine, body: dict[str, str], tag: str
) -> None:
    async with probe() as client:
        first = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        reused = await client.post(
            "/things", json=body, params={"tag": tag} if tag else None, headers=key("k-1")
        )
    assert first.status_code == 201
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert reused.json()["field"] == "Idempotency-Key"
    assert await things(engine) == 1


async def test_keys_are_each_callers_own(probe: Probe, engine: AsyncEngine) -> None:
    answers = []
    for who in (
        {"user": "M1"},
        {"user": "M2"},  # another person
        {"user": "M1", "role": "supervisor"},  # the same person acting in another role
        {"user": "M1", "team": "T2"},
    ):
        async with probe(**who) as client:
            answers.append(await client.post("/things", json={"name": "甲"}, headers=key("k-1")))
    assert [a.status_code for a in answers] == [201] * 4
    assert not any("idempotent-replayed" in a.headers for a in answers)
    assert len({a.json()["id"] for a in answers}) == 4
    assert await things(engine) == 4


async def test_an_expired_key_is_new_again_and_the_prune_removes_it(
    probe: Probe, engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = T0
    monkeypatch.setattr(clock, "now", lambda: now)
    async with probe() as client:
        first = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        now = T0 + timedelta(hours=settings.idempotency_key_hours) - timedelta(seconds=1)
        within = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        await client.post("/things", json={"name": "乙"}, headers=key("k-2"))  # kept longer
        now = T0 + timedelta(hours=settings.idempotency_key_hours)
        after = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
    assert within.headers.get("idempotent-replayed") == "true"
    assert after.status_code == 201 and "idempotent-replayed" not in after.headers
    assert after.json()["id"] != first.json()["id"]
    assert await things(engine) == 3

    # k-2 (taken a second before the day) has expired; k-1 (taken again at the day) not.
    now = T0 + timedelta(hours=2 * settings.idempotency_key_hours) - timedelta(seconds=1)
    resources = Resources.open(SCHEMA, settings)
    try:
        assert await prune_idempotency_keys({"resources": resources}) == 1
    finally:
        await resources.close()
    async with engine.connect() as conn:
        assert list(await conn.scalars(select(KEYS.c.key))) == ["k-1"]


def test_every_worker_prunes_its_services_keys_hourly(settings: Settings) -> None:
    config = worker_settings(SERVICES[0], [], settings=settings, serve_metrics=False)
    names = {job.name for job in config.cron_jobs}  # type: ignore[attr-defined]
    assert f"idempotency:prune:{SERVICES[0]}" in names


async def test_a_second_request_while_the_first_runs_is_told_it_is_in_flight(
    probe: Probe, engine: AsyncEngine, holds: Holds
) -> None:
    release = holds.release = asyncio.Event()
    async with probe() as client:
        first = asyncio.create_task(client.post("/things", json={"name": "甲"}, headers=key("k-1")))
        await asyncio.wait_for(holds.entered.wait(), 10)  # inside its transaction now
        holds.release = None  # the requests after it go straight through
        during = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
        release.set()
        done = await asyncio.wait_for(first, 10)
        after = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
    assert during.status_code == 409
    assert during.json()["code"] == "idempotency_key_in_flight"
    assert during.json()["field"] == "Idempotency-Key"
    assert done.status_code == 201
    assert after.headers["idempotent-replayed"] == "true" and after.content == done.content
    assert await things(engine) == 1


async def test_errors_are_not_kept_and_the_key_may_be_used_again(
    probe: Probe, engine: AsyncEngine
) -> None:
    async with probe() as client:
        refused = await client.post("/things", json={"name": "bad"}, headers=key("k-1"))
        failed = await client.post("/things", json={"name": "boom"}, headers=key("k-1"))
        assert await things(engine) == 0 and await keys(engine) == 0  # both rolled back
        fixed = await client.post("/things", json={"name": "甲"}, headers=key("k-1"))
    assert refused.status_code == 422 and refused.json()["field"] == "name"
    assert failed.status_code == 500
    assert fixed.status_code == 201
    assert await things(engine) == 1


@pytest.mark.parametrize(
    "value",
    ["", " ", "x" * 256, "ключ".encode(), "a\x7fb", '""'],
    ids=["empty", "blank", "256 characters", "not ASCII", "control", "empty quoted"],
)
async def test_a_malformed_key_is_refused_naming_the_header(
    probe: Probe, engine: AsyncEngine, value: str | bytes
) -> None:
    async with probe() as client:
        r = await client.post("/things", json={"name": "甲"}, headers={"Idempotency-Key": value})
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_invalid"
    assert r.json()["field"] == "Idempotency-Key"
    assert await things(engine) == 0


async def test_the_quoted_form_of_the_draft_is_the_same_key(
    probe: Probe, engine: AsyncEngine
) -> None:
    async with probe() as client:
        longest = "k" * 255
        first = await client.post("/things", json={"name": "甲"}, headers=key(longest))
        quoted = await client.post("/things", json={"name": "甲"}, headers=key(f'"{longest}"'))
    assert first.status_code == 201
    assert quoted.headers["idempotent-replayed"] == "true"
    assert await things(engine) == 1


def test_the_factory_refuses_a_key_on_a_route_whose_answers_would_not_be_kept(
    settings: Settings,
) -> None:
    router = APIRouter()  # not route_class=IdempotentRoute

    @router.post("/things", dependencies=[Idempotent])
    async def create_thing() -> None:
        return None

    with pytest.raises(RuntimeError, match="route_class=IdempotentRoute"):
        create_service_app(
            SCHEMA,
            title="x",
            description="",
            routers=[router],
            settings=settings,
            roles={("POST", "/things"): EVERYONE},
        )


CREATES: dict[str, set[str]] = {
    "profile": {
        "/customers",
        "/customers/import",
        "/customers/{msisdn}/contacts",
        "/erasures",
        "/managers",
        "/snapshots/{day}",
        "/teams",
        "/webhooks",
    },
    "warning": {
        "/subscribers/{msisdn}/contacts",
        "/usage/batch",
        "/warnings/{warning_id}/contacts",
        "/webhooks",
    },
    "care": {
        "/alerts",
        "/campaigns",
        "/campaigns/{campaign_id}/audience-list",
        "/rules",
        "/webhooks",
    },
    "complaint": {
        "/categories",
        "/complaints",
        "/complaints/{complaint_id}/attachments",
        "/complaints/{complaint_id}/compensations",
        "/sla/policies",
        "/webhooks",
    },
}
"""The POST routes that create (and the bulk loads); actions on a thing (approve, resolve,
a step of a flow) are guarded by its state instead."""


@pytest.mark.parametrize("service", SERVICES)
def test_every_create_route_documents_the_header(service: str) -> None:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    paths = app.openapi()["paths"]
    declared = {
        path
        for path, operations in paths.items()
        for operation in operations.values()
        if any(
            p["in"] == "header" and p["name"] == "Idempotency-Key"
            for p in operation.get("parameters", [])
        )
    }
    assert declared == CREATES[service]
    assert set(idempotent_routes(app)) == {("POST", path) for path in CREATES[service]}
    created = {
        path for path, ops in paths.items() if "201" in ops.get("post", {}).get("responses", {})
    }
    assert created <= declared, "a POST that answers 201 Created takes an Idempotency-Key"
