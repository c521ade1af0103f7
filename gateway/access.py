"""Which fields a partner's API key opens. People are checked by role in the services
(rows scoped by team, numbers masked); a partner is let through a field only with the
scope it needs, and never into the staff's fields (care, contact log, reports, changes)."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from services.kit.auth import Principal, Role


def allowed(scopes: frozenset[str] | None, scope: str | None) -> bool:
    """Whether a caller with ``scopes`` (``None``: a person) may read a field that needs
    ``scope`` (``None``: staff only)."""
    return scopes is None or (scope is not None and scope in scopes)


def refusal(scope: str | None) -> GraphQLError:
    message = f"此 API 密钥没有 {scope} 权限" if scope else "合作方 API 密钥不能访问此项"
    return GraphQLError(message, extensions={"code": "FORBIDDEN", "scope": scope})


class _Scope(BasePermission):
    def __init__(self, scope: str | None) -> None:
        self.scope = scope
        self.message = refusal(scope).message
        self.error_extensions = {"code": "FORBIDDEN", "scope": scope}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return allowed(info.context.scopes, self.scope)


def needs(scope: str | None) -> list[FieldExtension]:
    """Field extensions for a root field: partners need ``scope`` (``None``: staff only)."""
    return [PermissionExtension(permissions=[_Scope(scope)], use_directives=False)]


STAFF = needs(None)


def check(info: Any, scope: str | None) -> None:
    """The same rule inside a nested field's resolver: a field extension there would run
    for every object of a page (50 customers, 50 times), this is one comparison."""
    if not allowed(info.context.scopes, scope):
        raise refusal(scope)


def is_admin(principal: Principal) -> bool:
    """What the gateway itself decides: only admins manage partners' API keys."""
    return principal.role is Role.admin
