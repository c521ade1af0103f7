"""The gateway asks every service for its readiness over real HTTP."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from asgi_correlation_id import correlation_id

from gateway.app import create_app as create_gateway
from services.kit.config import SERVICES, Settings
from services.kit.http import create_http_client
from services.kit.testing import serve
from tests.conftest import AppClient

HEALTH = "{ health { service ready failing checks { name status } error } }"


@pytest.fixture
async def running_services(settings: Settings) -> AsyncIterator[dict[str, str]]:
    async with AsyncExitStack() as stack:
        urls = {}
        for service in SERVICES:
            app = importlib.import_module(f"services.{service}.app").create_app(settings)
            urls[service] = await stack.enter_async_context(serve(app))
        yield urls


async def query(client: httpx.AsyncClient, text: str) -> dict[str, object]:
    response = await client.post("/graphql", json={"query": text})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_health_reports_every_service_ready(
    running_services: dict[str, str], settings: Settings, app_client: AppClient
) -> None:
    routed = settings.model_copy(update={f"{s}_url": u for s, u in running_services.items()})
    async with app_client(create_gateway(routed), role=None) as client:
        body = await query(client, HEALTH)
    assert "errors" not in body
    health = body["data"]["health"]  # type: ignore[index]
    assert [h["service"] for h in health] == list(SERVICES)
    for h in health:
        assert h["ready"] is True
        assert h["failing"] == []
        assert {c["name"]: c["status"] for c in h["checks"]} == {"database": "ok", "redis": "ok"}


async def test_health_names_a_service_that_does_not_answer(
    running_services: dict[str, str], settings: Settings, app_client: AppClient
) -> None:
    urls = {**running_services, "care": "http://127.0.0.1:1"}
    routed = settings.model_copy(update={f"{s}_url": u for s, u in urls.items()})
    async with app_client(create_gateway(routed), role=None) as client:
        body = await query(client, HEALTH)
    by_service = {h["service"]: h for h in body["data"]["health"]}  # type: ignore[index]
    assert by_service["care"]["ready"] is False
    assert by_service["care"]["failing"] == ["service"]
    assert "ConnectError" in by_service["care"]["error"]
    assert all(by_service[s]["ready"] for s in SERVICES if s != "care")


async def test_the_gateway_creates_a_request_id_and_service_calls_forward_it(
    running_services: dict[str, str], settings: Settings, app_client: AppClient, token: Any
) -> None:
    routed = settings.model_copy(update={f"{s}_url": u for s, u in running_services.items()})
    async with app_client(create_gateway(routed), role=None) as client:
        response = await client.post("/graphql", json={"query": HEALTH})
    assert len(response.headers["X-Request-ID"]) == 32

    # Inside a request (here: a request id set as the middleware would), every call made
    # with the shared client carries the id, and the service answers under it.
    reset = correlation_id.set("trace-me-42")
    try:
        async with create_http_client() as http:
            answer = await http.get(
                f"{running_services['profile']}/whoami",
                headers={"Authorization": f"Bearer {token('operator')}"},
            )
    finally:
        correlation_id.reset(reset)
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "trace-me-42"
