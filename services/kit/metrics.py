"""Prometheus metrics: requests per route and jobs per function, labelled by process."""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("keepwell.http")

REQUESTS = Counter(
    "keepwell_http_requests_total",
    "HTTP requests handled, by route template and status",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "keepwell_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "method", "route"],
)
JOBS = Counter(
    "keepwell_jobs_total",
    "Background jobs finished, by function and outcome",
    ["service", "function", "outcome"],
)
JOB_DURATION = Histogram(
    "keepwell_job_duration_seconds",
    "Background job run time by function",
    ["service", "function"],
)


def _route_template(scope: Scope) -> str:
    # Label by template (/customers/{id}), never by raw path, to keep cardinality bounded.
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "unmatched"


class MetricsMiddleware:
    """Counts and times every request and writes one access-log line for it."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            REQUESTS.labels(self.service, method, route, str(status)).inc()
            LATENCY.labels(self.service, method, route).observe(elapsed)
            if route not in ("/metrics", "/healthz", "/readyz"):
                logger.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={"route": route, "status": status, "ms": round(elapsed * 1000, 1)},
                )


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
