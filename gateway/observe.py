"""What the gateway tells its operators about each GraphQL operation: Prometheus metrics by
operation name and, when tracing is on (services/kit/tracing.py), the operation's span,
the root of its trace.

Metrics, on ``/metrics`` beside the HTTP ones:

- ``keepwell_gateway_operations_total{operation, type}``: operations received;
- ``keepwell_gateway_operation_errors_total{operation, code}``: operations that answered
  with at least one error of that stable ``extensions.code`` (counted once per operation
  and code, so it divides by the first into an error rate), refusals before the operation
  ran included (an unknown persisted hash, the safelist, a mutation over GET). An error
  without a code is ``GRAPHQL_PARSE_FAILED`` (syntax), ``GRAPHQL_VALIDATION_FAILED`` (the
  document or its variables, nothing ran) or ``INTERNAL`` (a field that failed unexpectedly);
- ``keepwell_gateway_operation_duration_seconds{operation}``: from the request's operation
  being read to its result (persisted lookup, limits, validation, execution);
- ``keepwell_gateway_operation_cost{operation}``: the cost the limits measured
  (gateway/limits.py) of each operation that ran, what the rate limits charge.

Labels stay bounded whatever callers send. ``operation`` is the name of an operation the
document holds: a registered one (the safelist's, gateway/operations.py) as it is; any
other among the first ``metrics_max_operations`` distinct names this process saw, then
``(other)``; ``(anonymous)`` for an operation without a name and ``(none)`` when no operation
was identified (a document that does not parse, an operation name it does not hold, a
refusal before parsing). ``code`` is one of the gateway's own codes, shaped like one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from graphql import GraphQLError, GraphQLSyntaxError, get_operation_ast
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

from services.kit.http import current_request_id
from services.kit.tracing import REQUEST_ID

ANONYMOUS = "(anonymous)"
NONE = "(none)"
OTHER = "(other)"
MAX_NAME_LENGTH = 64
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

OPERATIONS = Counter(
    "keepwell_gateway_operations_total",
    "GraphQL operations received, by operation name and type",
    ["operation", "type"],
)
ERRORS = Counter(
    "keepwell_gateway_operation_errors_total",
    "GraphQL operations answered with at least one error of a code, by operation and code",
    ["operation", "code"],
)
DURATION = Histogram(
    "keepwell_gateway_operation_duration_seconds",
    "Time from reading a GraphQL operation to its result, by operation name",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COST = Histogram(
    "keepwell_gateway_operation_cost",
    "Cost the limits measured of each GraphQL operation that ran, by operation name",
    ["operation"],
    # From `{ viewer { userId } }` (charged 10) to the default maximum (50,000).
    buckets=(10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 50_000),
)


class OperationLabels:
    """The ``operation`` label of a name, within a bounded set per process."""

    def __init__(self, max_names: int) -> None:
        self.max_names = max_names
        self._names: set[str] = set()

    def label(self, name: str | None, registered: bool) -> str:
        if name is None:
            return ANONYMOUS
        # A registered name is the safelist's: operators put it there, callers cannot.
        if registered or name in self._names:
            return name
        if len(self._names) < self.max_names and len(name) <= MAX_NAME_LENGTH:
            self._names.add(name)
            return name
        return OTHER


def error_code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if code is None:
        if isinstance(error, GraphQLSyntaxError):
            return "GRAPHQL_PARSE_FAILED"
        return "GRAPHQL_VALIDATION_FAILED" if error.path is None else "INTERNAL"
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "OTHER"


@dataclass
class Seen:
    """One operation as the gateway observes it, from being read to its answer."""

    labels: OperationLabels
    span: Span
    registered: bool = False
    """Its text came from the safelist."""
    operation: str = NONE
    type: str = ""
    codes: set[str] = field(default_factory=set)
    cost: int = 0

    def identify(self, name: str | None, type_: str) -> None:
        self.operation = self.labels.label(name, self.registered)
        self.type = type_
        self.span.update_name(type_ if name is None else f"{type_} {self.operation}")
        self.span.set_attributes(
            {"graphql.operation.type": type_, "graphql.operation.name": self.operation}
        )

    def refused(self, code: str) -> None:
        self.codes.add(code if _CODE.fullmatch(code) else "OTHER")

    def answered(self, errors: Sequence[GraphQLError] | None, cost: int | None) -> None:
        """``cost``: what it was charged, when it ran (``None``: nothing ran)."""
        self.codes.update(error_code(e) for e in errors or ())
        self.cost = cost or 0


class Observer:
    """Metrics of every operation and, with a tracer, its root span."""

    def __init__(self, max_operation_names: int, tracer: Tracer | None) -> None:
        self.labels = OperationLabels(max_operation_names)
        self.tracer = tracer

    @contextmanager
    def operation(self) -> Iterator[Seen]:
        started = time.perf_counter()
        with self._root_span() as span:
            seen = Seen(self.labels, span)
            try:
                yield seen
            finally:
                self._record(seen, time.perf_counter() - started)

    @contextmanager
    def _root_span(self) -> Iterator[Span]:
        if self.tracer is None:
            yield INVALID_SPAN
            return
        # The gateway is the edge: it reads no caller's traceparent, so a caller chooses
        # neither our trace ids nor what is sampled.
        with self.tracer.start_as_current_span("GraphQL Operation", kind=SpanKind.SERVER) as span:
            request_id = current_request_id()
            if request_id:
                span.set_attribute(REQUEST_ID, request_id)
            yield span

    @staticmethod
    def _record(seen: Seen, elapsed: float) -> None:
        OPERATIONS.labels(seen.operation, seen.type).inc()
        DURATION.labels(seen.operation).observe(elapsed)
        for code in seen.codes:
            ERRORS.labels(seen.operation, code).inc()
        if seen.cost:
            COST.labels(seen.operation).observe(seen.cost)
        if seen.span.is_recording():
            seen.span.set_attribute("keepwell.cost", seen.cost)
            if seen.codes:
                codes = sorted(seen.codes)
                seen.span.set_attribute("keepwell.error_codes", codes)
                seen.span.set_status(Status(StatusCode.ERROR, ", ".join(codes)))


class OperationName(SchemaExtension):
    """Tells the request's :class:`Seen` which operation of the parsed document runs."""

    def on_parse(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        seen = getattr(execution.context, "seen", None)
        document = execution.graphql_document
        if isinstance(seen, Seen) and document is not None:
            operation = get_operation_ast(document, execution.operation_name)
            if operation is not None:
                name = operation.name.value if operation.name else None
                seen.identify(name, operation.operation.value)
