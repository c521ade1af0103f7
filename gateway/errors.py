"""What goes wrong behind the gateway, and how callers see it.

A service's error body (``{"code", "message", "field", "details"}``) becomes a
:class:`ServiceError`; a service that does not answer (refused, timed out, 5xx) a
:class:`ServiceUnavailable`. Queries turn them into GraphQL errors with a stable
``extensions.code`` on the field's path (the rest of the query still answers); mutations
return them as typed results (``gateway/types/results.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError


@dataclass
class ServiceError(Exception):
    service: str
    status: int
    code: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.service}: {self.code}: {self.message}"


@dataclass
class ServiceUnavailable(Exception):
    service: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service} is unavailable: {self.reason}"


GRAPHQL_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}


def graphql_error(exc: ServiceError | ServiceUnavailable) -> GraphQLError:
    """The error entry a query's caller sees for a field a service could not give."""
    if isinstance(exc, ServiceUnavailable):
        return GraphQLError(
            f"{exc.service} 服务暂时不可用",
            extensions={"code": "SERVICE_UNAVAILABLE", "service": exc.service},
        )
    code = GRAPHQL_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "INTERNAL")
    extensions: dict[str, Any] = {"code": code, "service": exc.service, "reason": exc.code}
    if exc.field is not None:
        extensions["field"] = exc.field
    return GraphQLError(exc.message, extensions=extensions)


class Unauthenticated(GraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "请先登录：Authorization: Bearer <令牌>", extensions={"code": "UNAUTHENTICATED"}
        )
