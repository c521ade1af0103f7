"""What a caller may learn about the gateway itself: in production no introspection, no
"Did you mean ..." suggestions, and no text of an unexpected error (each can be switched
with ``KEEPWELL_GATEWAY_INTROSPECTION`` / ``_FIELD_SUGGESTIONS`` / ``_MASK_ERRORS``).

An unexpected error becomes ``{"message": "内部错误", "extensions": {"code": "INTERNAL",
"requestId": ...}}``: the request id finds the full error in the logs (strawberry logs
every error before this masks it). Errors that carry a deliberate ``extensions.code`` (ours,
permission errors, ``SERVICE_UNAVAILABLE`` ...) and errors about the document itself
(syntax, validation, variables: they have a location and no path) pass as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from asgi_correlation_id import correlation_id
from graphql import FieldNode, GraphQLError, ValidationRule, get_named_type, is_introspection_type
from strawberry.extensions import MaskErrors, SchemaExtension

from gateway.config import GatewaySettings, get_gateway_settings

INTERNAL_MESSAGE = "内部错误"
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def _settings(context: Any) -> tuple[GatewaySettings, bool]:
    """The request's gateway settings, and whether it runs in production."""
    gateway = getattr(context, "gateway", None)
    if not isinstance(gateway, GatewaySettings):
        gateway = get_gateway_settings()
    settings = getattr(context, "settings", None)
    return gateway, getattr(settings, "env", None) == "production"


def _on(choice: bool | None, production: bool) -> bool:
    """A setting that is on by default outside production (``None``) or as chosen."""
    return not production if choice is None else choice


class NoIntrospection(ValidationRule):
    """graphql-core's ``NoSchemaIntrospectionCustomRule``, with a code."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        type_ = get_named_type(self.context.get_type())
        if type_ is not None and is_introspection_type(type_):
            self.report_error(
                GraphQLError(
                    f"此环境不提供内省（{node.name.value}）",
                    node,
                    extensions={"code": "INTROSPECTION_DISABLED"},
                )
            )


class Exposure(SchemaExtension):
    """Introspection and field suggestions, as the request's environment allows."""

    def on_validate(self) -> Iterator[None]:
        gateway, production = _settings(self.execution_context.context)
        if not _on(gateway.introspection, production):
            rules = self.execution_context.validation_rules
            self.execution_context.validation_rules = (*rules, NoIntrospection)
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        gateway, production = _settings(self.execution_context.context)
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors and not _on(gateway.field_suggestions, production):
            for error in errors:
                error.message = _SUGGESTION.sub("", error.message)


def unexpected(error: GraphQLError) -> bool:
    """An error nobody meant the caller to read: no code, and raised while running (a path)
    or outside the document (no location)."""
    if (error.extensions or {}).get("code"):
        return False
    return error.path is not None or not error.locations


class MaskUnexpected(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=unexpected, error_message=INTERNAL_MESSAGE)

    def on_operation(self) -> Iterator[None]:
        gateway, production = _settings(self.execution_context.context)
        if gateway.mask_errors is False or (gateway.mask_errors is None and not production):
            yield
            return
        yield from super().on_operation()

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL", "requestId": correlation_id.get()}
        return masked
