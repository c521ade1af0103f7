"""The one GraphQL schema over the four services: the root types, and what every operation
goes through (service errors as coded field errors, the calls it cost, the limits)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from graphql import GraphQLObjectType
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from gateway.errors import ServiceError, ServiceUnavailable, graphql_error
from gateway.hardening import Exposure, MaskUnexpected
from gateway.limits import QueryLimits
from gateway.live.subscriptions import OverWebSocket, Subscription
from gateway.mutations import Mutation
from gateway.observe import OperationName
from gateway.queries import Query
from gateway.ratelimit import RateLimit


class ValidationAfterLimits(ValidationCache):
    """strawberry's cached validation, run only for an operation the limits let through:
    the stock extension sets the pre-execution errors itself, and so would overwrite a
    refusal by the limits and let the operation run."""

    def on_validate(self) -> Iterator[None]:
        if self.execution_context.pre_execution_errors is None:
            yield from super().on_validate()
        else:
            yield


class ServiceErrors(SchemaExtension):
    """A service's failure on a field becomes that field's error entry with a stable code
    (``SERVICE_UNAVAILABLE`` and the service's name, ``FORBIDDEN``, ...)."""

    def on_execute(self):  # type: ignore[no-untyped-def]
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        for error in result.errors:
            original = error.original_error
            if isinstance(original, ServiceError | ServiceUnavailable):
                mapped = graphql_error(original)
                error.message = mapped.message
                error.extensions = mapped.extensions


class ServiceCalls(SchemaExtension):
    """``extensions.serviceCalls`` of every answer: the calls it cost per service, so a
    client (and the no-N+1 test) sees what a query costs."""

    def get_results(self) -> dict[str, Any]:
        caller = self.execution_context.context.__dict__.get("caller")
        return {"serviceCalls": dict(caller.calls)} if caller is not None else {}


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        # Which operation runs, for its metrics and span (gateway/observe.py).
        OperationName,
        # The edge first: limits before parsing and validation (gateway/limits.py), then
        # what production hides (gateway/hardening.py).
        QueryLimits,
        OverWebSocket,
        Exposure,
        # A repeated operation (an app sends the same few) skips parsing and validation;
        # the caches are bounded and shared by every request.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationAfterLimits(maxsize=256),
        # Charged by its cost once the operation may run (gateway/ratelimit.py).
        RateLimit,
        ServiceErrors,
        ServiceCalls,
        MaskUnexpected,
    ],
)


def _attribute(name: str) -> Callable[..., Any]:
    def resolve(source: Any, info: Any) -> Any:
        return getattr(source, name)

    resolve._is_default = True  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve


def _plain_attributes_read_directly(schema: strawberry.Schema) -> int:
    """A field without resolver or extension is its object's attribute. strawberry reads
    it through three calls of its own (``_get_basic_result``, ``get_result``, the default
    resolver); a page of 50 customers has ~300 such fields, and one ``getattr`` each is
    ~1 ms of CPU less per page. Done once, when the schema is built; what the fields answer
    does not change."""
    replaced = 0
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType):
            continue
        for graphql_field in type_.fields.values():
            extensions = graphql_field.extensions or {}
            field = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                isinstance(field, StrawberryField)
                and field.is_basic_field
                and getattr(graphql_field.resolve, "__name__", "") == "_get_basic_result"
                and field.default_resolver is getattr
            ):
                graphql_field.resolve = _attribute(field.python_name)
                replaced += 1
    return replaced


_plain_attributes_read_directly(schema)
