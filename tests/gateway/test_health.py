"""The gateway asks every service for its readiness over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_correlation_id import correlation_id

from services.kit.config import SERVICES
from services.kit.http import create_http_client
from tests.gateway.conftest import Running

HEALTH = "{ health { service ready failing checks { name status } error } }"


async def query(client: httpx.AsyncClient, text: str) -> dict[str, object]:
    response = await client.post("/graphql", json={"query": text})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_health_reports_every_service_ready(gateway: httpx.AsyncClient) -> None:
    body = await query(gateway, HEALTH)
    assert "errors" not in body
    health = body["data"]["health"]  # type: ignore[index]
    assert [h["service"] for h in health] == list(SERVICES)
    for h in health:
        assert h["ready"] is True
        assert h["failing"] == []
        assert {c["name"]: c["status"] for c in h["checks"]} == {"database": "ok", "redis": "ok"}


async def test_health_names_a_service_that_does_not_answer(
    services_running: Running, gateway: httpx.AsyncClient
) -> None:
    await services_running.stop("care")
    body = await query(gateway, HEALTH)
    by_service = {h["service"]: h for h in body["data"]["health"]}  # type: ignore[index]
    assert by_service["care"]["ready"] is False
    assert by_service["care"]["failing"] == ["service"]
    assert "ConnectError" in by_service["care"]["error"]
    assert all(by_service[s]["ready"] for s in SERVICES if s != "care")


async def test_the_gateway_creates_a_request_id_and_service_calls_forward_it(
    services_running: Running, gateway: httpx.AsyncClient, token: Any
) -> None:
    response = await gateway.post("/graphql", json={"query": HEALTH})
    assert len(response.headers["X-Request-ID"]) == 32

    # Inside a request (here: a request id set as the middleware would), every call made
    # with the shared client carries the id, and the service answers under it.
    reset = correlation_id.set("trace-me-42")
    try:
        async with create_http_client() as http:
            answer = await http.get(
                f"{services_running.urls['profile']}/whoami",
                headers={"Authorization": f"Bearer {token('operator')}"},
            )
    finally:
        correlation_id.reset(reset)
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "trace-me-42"
