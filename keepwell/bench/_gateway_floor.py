"""The floor for ``keepwell bench gateway``: hand-written FastAPI endpoints making exactly
the service calls the gateway makes for each benchmark query, concurrently where the
gateway's loaders run concurrently. What this costs is what the stack costs; whatever the
gateway adds on top is GraphQL (parsing, validation, resolvers, loaders)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from services.kit import clock
from services.kit.auth import Principal, Role, issue_token
from services.kit.config import get_settings
from services.kit.http import create_http_client

settings = get_settings()
app = FastAPI()
http = create_http_client(settings.http_timeout_seconds)
ALL = [("include_inactive", "true")]


def _auth(role: str, user: str, team: str | None) -> dict[str, str]:
    token = issue_token(Principal(user_id=user, role=Role(role), team_id=team), settings)
    return {"Authorization": f"Bearer {token}"}


async def _get(service: str, path: str, headers: dict[str, str], params: Any = None) -> Any:
    url = f"{settings.url_of(service)}{path}"
    try:
        response = await http.get(url, params=params, headers=headers)
    except httpx.TransportError:
        # A kept-alive connection the service had just closed: once more, as the gateway's
        # client retries a read.
        response = await http.get(url, params=params, headers=headers)
    response.raise_for_status()
    return response.json()


@app.get("/customer360")
async def customer360(msisdn: str, role: str = "operator", user: str = "bench") -> Any:
    h = _auth(role, user, None)
    customer = await _get("profile", f"/customers/{msisdn}", h)
    one = [("msisdn", customer["msisdn"])]
    parts = await asyncio.gather(
        _get(
            "profile",
            "/managers",
            h,
            [("include_inactive", "true"), ("id", customer["manager_id"])],
        ),
        _get("profile", "/teams", h, [("id", customer["team_id"])]),
        _get("warning", "/warnings", h, [("limit", 500), *one]),
        _get("warning", "/risk", h, one),
        _get("complaint", "/complaints", h, [("limit", 200), *one]),
        _get("care", "/messages", h, [("limit", 500), *one]),
        _get("care", "/tasks", h, [("limit", 500), *one]),
        _get("profile", f"/customers/{msisdn}/contacts", h, {"limit": 5}),
        _get("profile", f"/customers/{msisdn}/managers", h),
    )
    return {"customer": customer, "parts": parts}


@app.get("/work-queue")
async def work_queue(user: str, team: str) -> Any:
    h = _auth("manager", user, team)
    today = clock.today().isoformat()
    return await asyncio.gather(
        _get("warning", "/warnings", h, {"manager_id": user, "limit": 20}),
        _get("care", "/tasks", h, {"manager_id": user, "due_by": today, "limit": 20}),
        _get("complaint", "/complaints/queue", h, {"limit": 20}),
    )


@app.get("/customer-page")
async def customer_page(role: str = "operator", user: str = "bench") -> Any:
    h = _auth(role, user, None)
    page = await _get("profile", "/customers", h, {"limit": 50})
    numbers = [("msisdn", c["msisdn"]) for c in page["items"]]
    managers = sorted({c["manager_id"] for c in page["items"] if c["manager_id"]})
    found = await asyncio.gather(
        _get(
            "profile",
            "/managers",
            h,
            [("include_inactive", "true"), *(("id", m) for m in managers)],
        ),
        _get("warning", "/warnings", h, [("limit", 500), *numbers]),
    )
    return {"page": page, "parts": found}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["FLOOR_PORT"]), log_level="warning")
