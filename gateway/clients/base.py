"""What every service client shares: base URL, the shared HTTP client, readiness."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Readiness:
    service: str
    ready: bool
    checks: dict[str, str]
    failing: list[str]
    latency_ms: float
    error: str | None = None


@dataclass
class ServiceClient:
    service: str
    base_url: str
    http: httpx.AsyncClient

    async def readiness(self) -> Readiness:
        started = time.perf_counter()
        try:
            response = await self.http.get(f"{self.base_url}/readyz")
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Readiness(
                service=self.service,
                ready=False,
                checks={},
                failing=["service"],
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                error=f"{type(exc).__name__}: {exc}",
            )
        return Readiness(
            service=self.service,
            ready=response.status_code == 200 and bool(body.get("ready")),
            checks={str(k): str(v) for k, v in body.get("checks", {}).items()},
            failing=[str(f) for f in body.get("failing", [])],
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )
