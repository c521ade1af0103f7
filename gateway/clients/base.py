"""What every service client shares: the base URL, the one HTTP client of the process, the
caller's internal token, error bodies turned into exceptions, retries for reads and for
creates sent with an Idempotency-Key."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx
import orjson
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer

from gateway.errors import ServiceError, ServiceUnavailable
from services.kit.auth import Principal, issue_token
from services.kit.config import Settings

RETRYABLE_STATUS = frozenset({502, 503, 504})
RETRY_PAUSE_SECONDS = 0.05
IN_FLIGHT_PAUSE_SECONDS = 0.25
"""A create's earlier attempt still running in the service (409 idempotency_key_in_flight):
wait a little longer for it to finish, then ask again for its answer."""

_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
"""What a query string carries as it is (numbers, ids, names of enum values)."""


def _text(value: Any) -> str:
    """A parameter's value as httpx writes it (``true``/``false``, ``None`` as empty)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _quoted(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else quote_plus(text)


def query_string(params: Any) -> str:
    """``params`` (a mapping, a list value repeated, or pairs) encoded exactly as httpx
    encodes them (grouped by name, ``urlencode``). httpx takes about 15 us per parameter,
    0.5-1 ms for a batched read of 50 keys; plain values, the usual ones, go as they are."""
    grouped: dict[str, list[Any]] = {}
    if isinstance(params, Mapping):
        for name, value in params.items():
            many = list(value) if isinstance(value, list | tuple) else [value]
            grouped[str(name)] = many
    else:
        for name, value in params:
            grouped.setdefault(str(name), []).append(value)
    return "&".join(
        f"{_quoted(name)}={_quoted(_text(value))}"
        for name, values in grouped.items()
        for value in values
    )


def decoded(response: httpx.Response) -> Any:
    """A service's JSON answer. orjson reads the customers of a page (55 kB) in a third of
    the time the standard library takes; what it refuses (an integer beyond 64 bits) the
    standard library still reads."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return json.loads(response.content)


@dataclass(frozen=True)
class Readiness:
    service: str
    ready: bool
    checks: dict[str, str]
    failing: list[str]
    latency_ms: float
    error: str | None = None


@dataclass
class Caller:
    """One GraphQL request's identity towards the services, and its budget of retries."""

    principal: Principal
    settings: Settings
    retries_left: int
    _token: str | None = None
    calls: dict[str, int] = field(default_factory=dict)
    """Calls made per service in this request (what the no-N+1 test counts)."""

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = issue_token(self.principal, self.settings)
        return self._token


@dataclass
class ServiceClient:
    service: str
    base_url: str
    http: httpx.AsyncClient
    timeout_seconds: float
    tracer: Tracer | None = None
    """Tracing on: each call is a span of the operation's trace (services/kit/tracing.py)."""

    async def get(self, caller: Caller, path: str, params: Any = None) -> Any:
        return await self.request(caller, "GET", path, params=params)

    async def post(self, caller: Caller, path: str, body: Any = None, params: Any = None) -> Any:
        return await self.request(caller, "POST", path, params=params, body=body)

    async def create(self, caller: Caller, path: str, body: Any = None) -> Any:
        """A POST to a create route, with an Idempotency-Key made for this call: a retry
        after a lost answer (timeout, dropped connection, 5xx) gets the first answer again
        from the service (services/kit/idempotency.py) instead of creating twice."""
        return await self.request(
            caller, "POST", path, body=body, idempotency_key=str(uuid.uuid4())
        )

    async def request(
        self,
        caller: Caller,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The JSON answer of one call; a retry only for reads and for calls with an
        ``idempotency_key`` (the same key on every attempt), and only while the request's
        budget lasts: any other write that timed out may have happened."""
        idempotent = method == "GET" or idempotency_key is not None
        sent = {"Authorization": f"Bearer {caller.token}", **(headers or {})}
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        # A path with a query or fragment of its own: httpx merges the parameters in.
        merge = bool(params) and ("?" in path or "#" in path)
        # One span for the call, its retries events on it.
        with self._span(method) as span:
            while True:
                caller.calls[self.service] = caller.calls.get(self.service, 0) + 1
                pause = RETRY_PAUSE_SECONDS
                try:
                    response = await self.http.request(
                        method,
                        f"{self.base_url}{path}" if merge else self._url(path, params),
                        params=params if merge else None,
                        json=body,
                        timeout=self.timeout_seconds,
                        headers=sent,
                    )
                except httpx.HTTPError as exc:
                    failure: ServiceUnavailable = ServiceUnavailable(
                        self.service, type(exc).__name__
                    )
                else:
                    span.set_attribute("http.response.status_code", response.status_code)
                    if response.status_code < 400:
                        return decoded(response) if response.content else None
                    error = (
                        _service_error(self.service, response)
                        if response.status_code not in RETRYABLE_STATUS
                        and response.status_code < 500
                        else None
                    )
                    in_flight = idempotency_key is not None and (
                        error is not None and error.code == "idempotency_key_in_flight"
                    )
                    if error is not None and not in_flight:
                        raise error
                    if in_flight:
                        pause = IN_FLIGHT_PAUSE_SECONDS
                    failure = ServiceUnavailable(self.service, f"HTTP {response.status_code}")
                if not idempotent or caller.retries_left <= 0:
                    raise failure
                caller.retries_left -= 1
                span.add_event("retry", {"reason": str(failure)})
                await asyncio.sleep(pause)

    @contextmanager
    def _span(self, method: str) -> Iterator[Span]:
        """The call's span: named by method and service, never by URL (numbers in paths)."""
        if self.tracer is None:
            yield INVALID_SPAN
            return
        with self.tracer.start_as_current_span(
            f"{method} {self.service}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "keepwell.service": self.service},
        ) as span:
            yield span

    def _url(self, path: str, params: Any) -> httpx.URL:
        """Parsed here once: httpx parses a string URL twice, 0.1 ms for a long one."""
        url = f"{self.base_url}{path}"
        return httpx.URL(f"{url}?{query_string(params)}" if params else url)

    async def readiness(self) -> Readiness:
        started = time.perf_counter()
        try:
            with self._span("GET") as span:
                response = await self.http.get(f"{self.base_url}/readyz")
                span.set_attribute("http.response.status_code", response.status_code)
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


def _service_error(service: str, response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ServiceError(
        service=service,
        status=response.status_code,
        code=str(body.get("code", "http_error")),
        message=str(body.get("message", response.reason_phrase)),
        field=body.get("field"),
        details=list(body.get("details") or []),
    )
