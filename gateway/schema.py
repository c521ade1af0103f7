"""The one GraphQL schema over the four services: the root types, and what every operation
goes through (service errors as coded field errors, the calls it cost, the limits)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache

from gateway.errors import ServiceError, ServiceUnavailable, graphql_error
from gateway.hardening import Exposure, MaskUnexpected
from gateway.limits import QueryLimits
from gateway.mutations import Mutation
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
    extensions=[
        # The edge first: limits before parsing and validation (gateway/limits.py), then
        # what production hides (gateway/hardening.py).
        QueryLimits,
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
