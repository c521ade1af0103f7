"""What operators see of the gateway: metrics per operation on /metrics (requests, errors by
code, latency, cost; labels bounded whatever callers send) and, with tracing on, one trace
per operation with a span per service call, which the services join."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app as create_gateway
from services.kit.config import Settings
from services.kit.http import REQUEST_ID_HEADER
from services.kit.testing import Infra, serve
from services.kit.tracing import REQUEST_ID, TracingMiddleware
from services.profile.app import create_app as create_profile
from services.warning.app import create_app as create_warning
from tests.gateway.conftest import GATEWAY, bearer, gateway_client
from tests.gateway.test_persisted_queries import register


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def ask(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await client.post("/graphql", json={"query": query}, headers=headers)


class TestMetricsPerOperation:
    async def test_requests_latency_and_cost_by_operation_name(self, settings: Settings) -> None:
        async with gateway_client(settings) as client:
            before = await scrape(client)
            for _ in range(2):
                response = await ask(client, "query MetricsPing { __typename }")
                assert response.json() == {"data": {"__typename": "Query"}}
            await ask(client, "{ __typename }")
            after = await scrape(client)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        ops = "keepwell_gateway_operations_total"
        assert delta(ops, operation="MetricsPing", type="query") == 2
        assert delta(ops, operation="(anonymous)", type="query") == 1
        duration = "keepwell_gateway_operation_duration_seconds"
        assert delta(f"{duration}_count", operation="MetricsPing") == 2
        assert delta(f"{duration}_sum", operation="MetricsPing") > 0
        # `{ __typename }` costs 1 (gateway/limits.py): two of them, 2.
        assert delta("keepwell_gateway_operation_cost_count", operation="MetricsPing") == 2
        assert delta("keepwell_gateway_operation_cost_sum", operation="MetricsPing") == 2

    async def test_errors_are_counted_by_stable_code(self, settings: Settings) -> None:
        errors = "keepwell_gateway_operation_errors_total"
        async with gateway_client(settings) as client:
            before = await scrape(client)
            await ask(client, "query MetricsUnknownField { nope }")
            await ask(client, "query MetricsWhoAmI { viewer { userId } }")  # no token
            await ask(client, "query MetricsBroken {")
            deep = "query MetricsDeep { " + "viewer { " * 11 + "userId" + " }" * 12
            await ask(client, deep, **bearer("admin"))
            await ask(client, "query MetricsFine { viewer { userId } }", **bearer("admin"))
            after = await scrape(client)

        def delta(**labels: str) -> float:
            return value(after, errors, **labels) - value(before, errors, **labels)

        assert delta(operation="MetricsUnknownField", code="GRAPHQL_VALIDATION_FAILED") == 1
        assert delta(operation="MetricsWhoAmI", code="UNAUTHENTICATED") == 1
        # A document that does not parse names no operation a caller could choose.
        assert delta(operation="(none)", code="GRAPHQL_PARSE_FAILED") == 1
        assert delta(operation="MetricsDeep", code="QUERY_TOO_DEEP") == 1
        fine = {
            k: v
            for k, v in after.items()
            if k[0] == errors and ("operation", "MetricsFine") in k[1]
        }
        assert fine == {}
        # Nothing ran of a refused operation: no cost observed.
        cost = "keepwell_gateway_operation_cost_count"
        assert value(after, cost, operation="MetricsUnknownField") == 0
        assert value(after, cost, operation="MetricsDeep") == 0

    async def test_a_caller_cannot_make_unbounded_series(self, settings: Settings) -> None:
        capped = GATEWAY.model_copy(update={"metrics_max_operations": 2})
        async with gateway_client(settings, capped) as client:
            before = await scrape(client)
            for name in ("CapOne", "CapTwo", "CapThree", "CapFour", "CapOne"):
                await ask(client, f"query {name} {{ __typename }}")
            await ask(client, "query " + "L" * 200 + " { __typename }")
            after = await scrape(client)

        ops = "keepwell_gateway_operations_total"
        names = {dict(labels)["operation"] for name, labels in after if name == ops}
        assert {"CapOne", "CapTwo"} <= names
        assert not {"CapThree", "CapFour", "L" * 200} & names
        other = value(after, ops, operation="(other)", type="query")
        assert other - value(before, ops, operation="(other)", type="query") == 3
        assert (
            value(after, ops, operation="CapOne", type="query")
            - value(before, ops, operation="CapOne", type="query")
            == 2
        )

    async def test_registered_operations_keep_their_names_past_the_cap(
        self, settings: Settings, infra: Infra
    ) -> None:
        text = "query MetricsRegistered { viewer { userId } }"
        await register(infra.database_url, text)
        gateway = GATEWAY.model_copy(update={"metrics_max_operations": 0, "safelist": True})
        async with gateway_client(settings, gateway) as client:
            before = await scrape(client)
            assert (await ask(client, text, **bearer("admin"))).status_code == 200
            refused = await ask(client, "query MetricsUnlisted { __typename }", **bearer("admin"))
            assert refused.status_code == 400
            after = await scrape(client)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        ops = "keepwell_gateway_operations_total"
        assert delta(ops, operation="MetricsRegistered", type="query") == 1
        # Refused before parsing: no operation identified, its code counted.
        errors = "keepwell_gateway_operation_errors_total"
        assert delta(errors, operation="(none)", code="OPERATION_NOT_SAFELISTED") == 1


class Ended(SimpleSpanProcessor):
    """The SDK's in-memory exporter behind a processor that also wakes a test waiting for
    spans: a service ends its span after the last byte of its answer, which may be just
    after the gateway has read it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        super().__init__(self.exporter)
        self.changed = asyncio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        super().on_end(span)
        self.changed.set()

    async def finished(self, count: int) -> list[ReadableSpan]:
        """The spans once ``count`` have ended."""
        async with asyncio.timeout(5):
            while True:
                self.changed.clear()
                spans = list(self.exporter.get_finished_spans())
                if len(spans) >= count:
                    return spans
                await self.changed.wait()


@pytest.fixture(scope="module")
def ended() -> Ended:
    """Spans of the process's tracer provider, which services/kit/tracing.py uses when one
    is set (a provider can be set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    processor = Ended()
    provider.add_span_processor(processor)
    return processor


@pytest.fixture
def spans(ended: Ended) -> Iterator[Ended]:
    ended.exporter.clear()
    yield ended
    ended.exporter.clear()


TWO_SERVICES = (
    "query TracedBoth { customers(first: 2) { nodes { msisdn } } "
    "warnings(first: 2) { nodes { __typename } } }"
)


class TestTracing:
    @pytest.fixture
    async def traced(self, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        """Profile and warning over real HTTP and the gateway in front, tracing on."""
        on = settings.model_copy(update={"tracing": True})
        async with AsyncExitStack() as stack:
            profile = await stack.enter_async_context(serve(create_profile(on)))
            warning = await stack.enter_async_context(serve(create_warning(on)))
            routed = on.model_copy(update={"profile_url": profile, "warning_url": warning})
            manager = await stack.enter_async_context(
                LifespanManager(create_gateway(routed, GATEWAY))
            )
            transport = httpx.ASGITransport(app=manager.app)
            yield await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway")
            )

    async def test_one_trace_per_operation_with_a_span_per_service_call(
        self, traced: httpx.AsyncClient, spans: Ended
    ) -> None:
        response = await ask(traced, TWO_SERVICES, **bearer("admin"))
        body = response.json()
        assert "errors" not in body, body
        calls = body["extensions"]["serviceCalls"]
        assert calls == {"profile": 1, "warning": 1}

        finished_spans = await spans.finished(5)
        assert len({s.context.trace_id for s in finished_spans}) == 1
        [root] = [s for s in finished_spans if s.parent is None]
        assert root.name == "query TracedBoth"
        assert root.kind is SpanKind.SERVER
        request_id = response.headers[REQUEST_ID_HEADER]
        assert root.attributes is not None
        assert root.attributes[REQUEST_ID] == request_id
        assert root.attributes["graphql.operation.name"] == "TracedBoth"

        clients = [s for s in finished_spans if s.kind is SpanKind.CLIENT]
        assert sorted(s.name for s in clients) == ["GET profile", "GET warning"]
        assert all(
            s.parent is not None and s.parent.span_id == root.context.span_id for s in clients
        )

        # Each service joined the trace under the gateway's call to it, by route template.
        servers = [s for s in finished_spans if s.kind is SpanKind.SERVER and s is not root]
        by_parent = {s.parent.span_id: s for s in servers if s.parent is not None}
        assert set(by_parent) == {c.context.span_id for c in clients}
        names = {c.name: by_parent[c.context.span_id].name for c in clients}
        assert names == {"GET profile": "GET /customers", "GET warning": "GET /warnings"}
        assert all(
            s.attributes is not None and s.attributes[REQUEST_ID] == request_id for s in servers
        )
        # Nothing finer than a service call: no span per resolved field.
        assert len(finished_spans) == 1 + 2 * sum(calls.values())

    async def test_a_failed_operation_marks_its_root_span(
        self, traced: httpx.AsyncClient, spans: Ended
    ) -> None:
        await ask(traced, "query TracedUnknown { nope }", **bearer("admin"))
        [root] = await spans.finished(1)
        assert root.name == "query TracedUnknown"
        assert root.status.description == "GRAPHQL_VALIDATION_FAILED"
        assert root.attributes is not None
        assert root.attributes["keepwell.error_codes"] == ("GRAPHQL_VALIDATION_FAILED",)

    async def test_tracing_off_installs_nothing(self, settings: Settings, spans: Ended) -> None:
        assert not settings.tracing_on
        profile = create_profile(settings)
        assert not any(m.cls is TracingMiddleware for m in profile.user_middleware)
        traced = create_profile(settings.model_copy(update={"tracing": True}))
        assert any(m.cls is TracingMiddleware for m in traced.user_middleware)

        app = create_gateway(settings, GATEWAY)
        async with LifespanManager(app) as manager:
            clients = app.state.clients
            assert all(client.tracer is None for client in clients.services.values())
            assert len(clients.http.event_hooks["request"]) == 1  # the request id only
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                response = await ask(c, "query Untraced { viewer { userId } }", **bearer("admin"))
                assert response.status_code == 200
        assert spans.exporter.get_finished_spans() == ()

    def test_the_standard_otlp_endpoint_turns_tracing_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("KEEPWELL_TRACING", raising=False)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        assert not Settings().tracing_on
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        assert Settings().tracing_on
        monkeypatch.setenv("KEEPWELL_TRACING", "false")
        assert not Settings().tracing_on
