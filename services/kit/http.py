"""The one service-to-service HTTP client per process.

Explicit timeouts; the current request id travels on every call so one user action can be
followed through every service's logs.
"""

from __future__ import annotations

import re

import httpx
from asgi_correlation_id import correlation_id
from opentelemetry import propagate

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 64
"""What ``outbox.request_id`` (varchar(64)) and the log lines keep."""

_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=-]{{1,{REQUEST_ID_MAX_LENGTH}}}")


def valid_request_id(value: str) -> bool:
    """A request id we keep as it came: at most 64 plain characters (a UUID, a trace id).
    The edge middleware replaces any other with a fresh one, so a long or odd header can
    neither break a write that records it nor forge log lines."""
    return _REQUEST_ID.fullmatch(value) is not None


def current_request_id() -> str | None:
    """The id of the request being served (None outside one): what audit rows record."""
    return correlation_id.get()


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = correlation_id.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


async def _propagate_trace(request: httpx.Request) -> None:
    propagate.inject(request.headers)


def create_http_client(
    timeout_seconds: float = 5.0, *, tracing: bool = False, **kwargs: object
) -> httpx.AsyncClient:
    """``tracing``: every call also carries the current span's W3C ``traceparent``, so the
    service called joins the caller's trace (services/kit/tracing.py)."""
    hooks = [_forward_request_id, _propagate_trace] if tracing else [_forward_request_id]
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds, connect=min(2.0, timeout_seconds)),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        event_hooks={"request": hooks},
        **kwargs,  # type: ignore[arg-type]
    )
