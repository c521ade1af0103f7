"""Which fields a partner's API key opens. People are checked by role in the services
(rows scoped by team, numbers masked); a partner is let through a field only with the
scope it needs, and never into the staff's fields (care, contact log, reports, changes)."""

from __future__ import annotations

from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from services.kit.auth import Principal, Role


class _Scope(BasePermission):
    def __init__(self, scope: str | None) -> None:
        self.scope = scope
        self.message = f"此 API 密钥没有 {scope} 权限" if scope else "合作方 API 密钥不能访问此项"
        self.error_extensions = {"code": "FORBIDDEN", "scope": scope}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        scopes: frozenset[str] | None = info.context.scopes
        return scopes is None or (self.scope is not None and self.scope in scopes)


def needs(scope: str | None) -> list[FieldExtension]:
    """Field extensions: partners need ``scope`` (``None``: staff only)."""
    return [PermissionExtension(permissions=[_Scope(scope)], use_directives=False)]


STAFF = needs(None)


def is_admin(principal: Principal) -> bool:
    """What the gateway itself decides: only admins manage partners' API keys."""
    return principal.role is Role.admin
