from __future__ import annotations

import strawberry

from gateway.clients.base import Readiness


@strawberry.type(description="One dependency check of a service, e.g. its database.")
class HealthCheck:
    name: str
    status: str


@strawberry.type(description="Whether a service can serve requests, as its /readyz reports.")
class ServiceHealth:
    service: str
    ready: bool
    checks: list[HealthCheck]
    failing: list[str]
    latency_ms: float
    error: str | None

    @classmethod
    def from_readiness(cls, r: Readiness) -> ServiceHealth:
        return cls(
            service=r.service,
            ready=r.ready,
            checks=[HealthCheck(name=k, status=v) for k, v in r.checks.items()],
            failing=r.failing,
            latency_ms=r.latency_ms,
            error=r.error,
        )
