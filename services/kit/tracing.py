"""OpenTelemetry traces, off unless configured (``KEEPWELL_TRACING``, or an OTLP endpoint
in ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``).

One trace per GraphQL operation: the gateway's span, named by the operation, is the root;
each call to a service is a client span under it, and the service's span for that request
joins the trace from the W3C ``traceparent`` header the shared HTTP client sends
(services/kit/http.py). Nothing finer: no span per resolved field, per SQL statement or per
ASGI message, so a trace stays a picture of the calls an operation cost.

Spans carry route templates and service names, never a URL: paths and query strings hold
phone numbers, which must not reach a tracing backend in full.

Off, nothing is installed: no middleware, no client hook, no tracer; the SDK and the
exporter are not even imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, get_tracer_provider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.http import current_request_id

if TYPE_CHECKING:
    from services.kit.config import Settings

FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}
"""``FastAPI(telemetry=...)`` of every app. FastAPI's own telemetry starts tracing as soon as
the process has a tracer provider, whatever our setting says; its server spans carry the
URL's path and query (phone numbers here) and its operation spans one span per dependency.
Our spans (below, and gateway/observe.py) replace it; metrics are Prometheus's."""

REQUEST_ID = "keepwell.request_id"
"""The span attribute of the request id, the key to the same request's log lines."""


def tracer(process: str, settings: Settings) -> Tracer | None:
    """The tracer of ``process`` (``gateway``, ``profile``, ...) when tracing is on.

    A process that already has an SDK tracer provider (set by whoever embeds it, such as
    ``opentelemetry-instrument``, or a test with the SDK's in-memory exporter) keeps it;
    otherwise one is made that batches spans to the OTLP/HTTP exporter, which reads its
    endpoint, headers and timeout from the standard ``OTEL_EXPORTER_OTLP_*`` variables.
    The resource's ``service.name`` is ``keepwell-<process>`` unless ``OTEL_SERVICE_NAME``
    names it."""
    if not settings.tracing_on:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"keepwell-{process}"}
        provider = TracerProvider(resource=Resource.create(named))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return provider.get_tracer(f"keepwell.{process}")


class _AsgiHeaders(Getter[Scope]):
    """Reads a propagation header out of an ASGI scope (header names arrive lowercased)."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier["headers"] if k == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier["headers"]]


_HEADERS = _AsgiHeaders()


def joined(scope: Scope) -> Context:
    """The trace a request belongs to, from its ``traceparent`` (none: a new trace)."""
    return propagate.extract(scope, getter=_HEADERS)


class TracingMiddleware:
    """One server span per HTTP request of a service, joined to the caller's trace; named
    by method and route template once routing has found the route."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with self.tracer.start_as_current_span(
            method,
            context=joined(scope),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        ) as span:
            request_id = current_request_id()
            if request_id:
                span.set_attribute(REQUEST_ID, request_id)

            async def traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, traced)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
