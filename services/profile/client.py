"""What other services read from the profile service over HTTP (its public REST API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.kit.auth import issue_token, rebuild_principal
from services.kit.config import Settings
from services.profile.contract import CustomerSnapshot


async def customer_snapshots(
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    acting_as: str,
    page_size: int = 500,
    profile_url: str | None = None,
) -> AsyncIterator[list[CustomerSnapshot]]:
    """Every customer, a page at a time, as the snapshot profile's events carry: what a
    read model is rebuilt from."""
    base = (profile_url or settings.url_of("profile")).rstrip("/")
    cursor: str | None = None
    while True:
        # A fresh token per page: a rebuild can outlast one token's lifetime.
        token = issue_token(rebuild_principal(acting_as), settings)
        params: dict[str, Any] = {"limit": page_size}
        if cursor:
            params["cursor"] = cursor
        response = await http.get(
            f"{base}/customers", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        body = response.json()
        # The archive's id is the snapshot's customer_id (events carry it under that name).
        yield [
            CustomerSnapshot.model_validate({**item, "customer_id": item["id"]})
            for item in body["items"]
        ]
        cursor = body.get("next_cursor")
        if not cursor:
            return
