"""What every service's app promises: health, readiness, metrics, auth, errors, request ids."""

from __future__ import annotations

import importlib

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.kit.auth import Principal, Role, issue_token
from services.kit.config import SERVICES, Settings
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
    forged = settings.model_copy(
        update={"internal_key": SecretStr("someone-elses-key-of-at-least-32-bytes")}
    )
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
    assert response.json() == {"user_id": "M0007", "role": "manager", "team_id": "T001"}


async def test_request_id_is_kept_or_created_and_returned(app_client: AppClient) -> None:
    async with app_client(create("warning")) as client:
        given = await client.get("/whoami", headers={"X-Request-ID": "req-abc-123"})
        created = await client.get("/whoami")
    assert given.headers["X-Request-ID"] == "req-abc-123"
    assert len(created.headers["X-Request-ID"]) == 32


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
