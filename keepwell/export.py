"""The access right (PIPL): everything held about one customer, as one JSON document.

Each service answers its own part (``GET /exports/{msisdn}``, admin only); this gathers
them over HTTP, so the document is built from every service as it stands and no service
reads another's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from services.kit import clock
from services.kit.auth import Principal, Role, issue_token
from services.kit.config import SERVICES, Settings
from services.kit.http import create_http_client


async def export_customer(
    settings: Settings,
    msisdn: str,
    user: str,
    url_of: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """One document: each service's part, under its name. ``user`` is the admin it is
    exported for (profile audits the read under that id)."""
    token = issue_token(Principal(user_id=user, role=Role.admin), settings)
    where = url_of or settings.url_of
    async with create_http_client(30.0, headers={"Authorization": f"Bearer {token}"}) as http:

        async def part(service: str) -> Any:
            response = await http.get(f"{where(service)}/exports/{msisdn}")
            if response.status_code == httpx.codes.NOT_FOUND and service == "profile":
                raise LookupError(f"{msisdn} is no customer on file")
            response.raise_for_status()
            return response.json()

        parts = await asyncio.gather(*(part(s) for s in SERVICES))
    return {
        "msisdn": msisdn,
        "exported_at": clock.now().isoformat(),
        "exported_for": user,
        "services": dict(zip(SERVICES, parts, strict=True)),
    }
