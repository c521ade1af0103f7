"""What every service's app promises: health, readiness, metrics, auth, errors, request ids."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.kit import clock, keys
from services.kit.access import EVERYONE
from services.kit.app import Session, create_service_app
from services.kit.audit import AuditedRoute, change_audit_table
from services.kit.auth import Principal, Role, issue_token, relay_principal
from services.kit.config import SERVICES, Settings
from services.kit.events import Envelope, event_tables
from services.kit.events.consumer import Consumer
from services.kit.testing import serve
from tests.conftest import AppClient


def create(service: str, settings: Settings | None = None) -> FastAPI:
    module = importlib.import_module(f"services.{service}.app")
    app: FastAPI = module.create_app(settings) if settings else module.create_app()
    return app


@pytest.mark.parametrize("service", SERVICES)
async def test_healthz_and_readyz_answer_without_a_token(
    service: str, app_client: AppClient
) -> None:
    async with app_client(create(service), role=None) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert alive.status_code == 200
    assert alive.json()["service"] == service
    assert ready.status_code == 200
    assert ready.json() == {
        "service": service,
        "ready": True,
        "checks": {"database": "ok", "redis": "ok"},
        "failing": [],
    }


async def test_readyz_names_the_unreachable_dependency(
    app_client: AppClient, settings: Settings
) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with app_client(create("profile", broken), role=None) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error:")


async def test_a_call_without_a_valid_token_is_refused(
    app_client: AppClient, settings: Settings
) -> None:
    someone_else, _ = keys.generate()  # a key pair nobody configured
    forged = settings.model_copy(update={"user_signing_key": SecretStr(someone_else)})
    expired = issue_token(Principal(user_id="u1", role=Role.manager), settings, ttl_seconds=-60)
    async with app_client(create("profile"), role=None) as client:
        missing = await client.get("/whoami")
        forged_token = issue_token(Principal(user_id="x", role=Role.admin), forged)
        bad = await client.get("/whoami", headers={"Authorization": f"Bearer {forged_token}"})
        old = await client.get("/whoami", headers={"Authorization": f"Bearer {expired}"})
    for response in (missing, bad, old):
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    assert "已过期" in old.json()["message"]


async def test_a_valid_token_identifies_the_acting_principal(app_client: AppClient) -> None:
    async with app_client(create("care"), role="manager", user="M0007", team="T001") as client:
        response = await client.get("/whoami")
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "M0007",
        "role": "manager",
        "team_id": "T001",
        "caller": None,
        "scopes": [],  # a partner's only
    }


async def test_request_id_is_kept_or_created_and_returned(app_client: AppClient) -> None:
    async with app_client(create("warning")) as client:
        given = await client.get("/whoami", headers={"X-Request-ID": "req-abc-123"})
        created = await client.get("/whoami")
    assert given.headers["X-Request-ID"] == "req-abc-123"
    assert len(created.headers["X-Request-ID"]) == 32


async def test_an_overlong_request_id_is_replaced_and_a_publishing_write_still_commits(
    app_client: AppClient, engine: AsyncEngine
) -> None:
    """``outbox.request_id`` is varchar(64): an unchecked 200-character header used to fail
    every write that publishes an event."""
    from tests.profile.conftest import customer

    async with app_client(create("profile")) as client:
        team = {"id": "T1", "name": "VIP", "region": "广东", "supervisor_id": "S1",
                "supervisor_name": "周敏"}  # fmt: skip
        assert (await client.post("/teams", json=team)).status_code == 201
        manager = {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}
        assert (await client.post("/managers", json=manager)).status_code == 201
        created = await client.post(
            "/customers", json=customer(), headers={"X-Request-ID": "r" * 200}
        )
        odd = await client.get("/whoami", headers={"X-Request-ID": "line\nbreak"})
    assert created.status_code == 201, created.text
    fresh = created.headers["X-Request-ID"]
    assert fresh != "r" * 200 and len(fresh) == 32
    assert odd.headers["X-Request-ID"] != "line\nbreak"
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT request_id FROM profile.outbox"))).scalars()
        assert set(stored) == {fresh}


async def test_metrics_count_requests_per_route_template(app_client: AppClient) -> None:
    async with app_client(create("complaint")) as client:
        for _ in range(3):
            await client.get("/whoami")
        await client.get("/no-such-route")
        text = (await client.get("/metrics")).text
    assert (
        'keepwell_http_requests_total{method="GET",route="/whoami",service="complaint",status="200"}'
        in text
    )
    assert 'route="unmatched",service="complaint",status="404"' in text
    assert "keepwell_http_request_duration_seconds_bucket" in text


async def test_unknown_routes_use_the_one_error_format(app_client: AppClient) -> None:
    async with app_client(create("profile")) as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "找不到该地址",
        "field": None,
        "details": [],
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_documents_the_error_format(service: str, app_client: AppClient) -> None:
    async with app_client(create(service), role=None) as client:
        spec = (await client.get("/openapi.json")).json()
    assert "ErrorBody" in spec["components"]["schemas"]
    assert spec["paths"]["/whoami"]["get"]["responses"]["401"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/ErrorBody"}


async def test_a_write_whose_commit_fails_is_never_reported_done(
    engine: AsyncEngine, settings: Settings, token: Callable[..., str]
) -> None:
    """The commit happens before the response: a client (a person, or the relay posting to
    ``/events``) is told "done" only for what committed, and the change audit records only
    what committed. A deferred constraint makes the statements succeed and the commit fail."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS commit_probe CASCADE"))
        await conn.execute(text("CREATE SCHEMA commit_probe"))
        await conn.execute(
            text(
                "CREATE TABLE commit_probe.once (n int CONSTRAINT uq_once_n UNIQUE "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        await conn.run_sync(event_tables("commit_probe").inbox.create)
        await conn.run_sync(change_audit_table("commit_probe").create)
    insert_twice = text("INSERT INTO commit_probe.once VALUES (1), (1)")

    router = APIRouter(route_class=AuditedRoute)

    @router.post("/twice")
    async def twice(session: Session) -> dict[str, bool]:
        await session.execute(insert_twice)
        return {"ok": True}

    consumer = Consumer("commit_probe")

    @consumer.handles_type("probe.commit_fails")
    async def apply(session: AsyncSession, payload: Any, envelope: Envelope) -> None:
        await session.execute(insert_twice)

    app = create_service_app(
        "commit_probe", title="commit probe", description="", routers=[router], consumer=consumer,
        settings=settings, roles={("POST", "/twice"): EVERYONE},
    )  # fmt: skip
    event = Envelope(
        id=uuid.uuid4(), seq=1, type="probe.commit_fails", version=1, producer="profile",
        aggregate_id="a", occurred_at=clock.now(), payload={},
    )  # fmt: skip
    try:
        async with (
            serve(app) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token()}"}
            ) as client,
        ):
            write = await client.post("/twice")
            relay = issue_token(relay_principal("profile"), settings)
            events = await client.post(
                "/events",
                json={"events": [event.model_dump(mode="json")]},
                headers={"Authorization": f"Bearer {relay}"},
            )
        async with engine.connect() as conn:
            inbox = await conn.scalar(text("SELECT count(*) FROM commit_probe.inbox"))
            audited = await conn.scalar(text("SELECT count(*) FROM commit_probe.change_audit"))
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA commit_probe CASCADE"))
    assert write.status_code >= 500 and write.json()["code"] == "internal_error"
    assert events.status_code >= 500
    assert inbox == 0
    assert audited == 0
