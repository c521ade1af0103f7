"""Which roles may call each route: declared for every route, checked in one place.

A route declares its roles in one of two ways, both read here:

- a gate among its dependencies (``require_role(...)``: a :class:`~services.kit.auth.RoleGate`
  that keeps its roles; ``require_caller(...)`` admits no person at all);
- an entry of its service's registry (``ROUTE_ROLES`` next to the service's endpoints,
  given to the app factory), for routes whose finer rules (a team, a ticket's handler) are
  the service's: :func:`services.kit.auth.current_principal` refuses any other role with
  403 before the route runs.

A route a partner may call can also name the scope a partner needs on it (``ROUTE_SCOPES``
beside ``ROUTE_ROLES``): a partner's token without that scope is refused with 403 there,
as the gateway refuses the API key. A route that names none (reference data: rules,
calendars, teams) admits partners by role alone.

Admin is always admitted. The app factory refuses to build an app with an authenticated
route that declares nothing (:func:`undeclared`), so a new route cannot be forgotten;
``tests/kit/test_route_roles.py`` calls every route with every other role.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from services.kit.auth import CallerGate, Role, RoleGate, Scope, current_principal

RouteKey = tuple[str, str]  # (method, route path)
RouteRoles = Mapping[RouteKey, tuple[Role, ...]]
RouteScopes = Mapping[RouteKey, Scope]

EVERYONE: tuple[Role, ...] = tuple(Role)
STAFF: tuple[Role, ...] = (Role.operator, Role.supervisor, Role.manager)
"""Every person but partners: the services scope their rows by team and manager."""

KIT_ROUTE_ROLES: dict[RouteKey, tuple[Role, ...]] = {
    ("GET", "/whoami"): EVERYONE,
    ("GET", "/event-types"): EVERYONE,
    # A partner sees its own subscriptions and deliveries (services.kit.events.webhooks).
    ("GET", "/webhooks"): EVERYONE,
    ("GET", "/webhooks/{webhook_id}/deliveries"): EVERYONE,
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): EVERYONE,
}


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def depends_on(dependant: Any, call: Any) -> bool:
    """Whether ``call`` is among the dependencies of ``dependant``, however deep."""
    return dependant is not None and call in set(_calls(dependant))


def routes(app: FastAPI) -> Iterator[tuple[RouteKey, Any]]:
    """Every (method, path) of the app with its dependant (None for plain routes)."""
    for context in iter_route_contexts(app.routes):
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield (method, str(context.path)), getattr(context, "dependant", None)


def authenticated(dependant: Any) -> bool:
    return dependant is not None and current_principal in set(_calls(dependant))


def allowed_roles(app: FastAPI, key: RouteKey, dependant: Any) -> frozenset[Role] | None:
    """The roles that may call the route (admin included unless only an internal caller
    may), or None when it declares nothing."""
    allowed: frozenset[Role] | None = None
    for call in _calls(dependant) if dependant is not None else ():
        if isinstance(call, RoleGate | CallerGate):
            allowed = call.roles if allowed is None else allowed & call.roles
    registry: RouteRoles = getattr(app.state, "route_roles", {})
    if key in registry:
        declared = frozenset(registry[key]) | {Role.admin}
        allowed = declared if allowed is None else allowed & declared
    return allowed


def route_roles(app: FastAPI) -> dict[RouteKey, frozenset[Role]]:
    """Every authenticated route and the roles it admits."""
    found: dict[RouteKey, frozenset[Role]] = {}
    for key, dependant in routes(app):
        if authenticated(dependant):
            allowed = allowed_roles(app, key, dependant)
            if allowed is not None:
                found[key] = allowed
    return found


def undeclared(app: FastAPI) -> list[RouteKey]:
    return [
        key
        for key, dependant in routes(app)
        if authenticated(dependant) and allowed_roles(app, key, dependant) is None
    ]


def unknown_entries(app: FastAPI) -> list[RouteKey]:
    """Registry entries that name no route (a renamed path would silently drop its check),
    and scopes on routes no partner may call (a scope there would guard nothing)."""
    registry: RouteRoles = getattr(app.state, "route_roles", {})
    scopes: RouteScopes = getattr(app.state, "route_scopes", {})
    present = {key for key, _ in routes(app)}
    admitted = route_roles(app)
    return [key for key in registry if key not in present] + [
        key for key in scopes if Role.partner not in admitted.get(key, frozenset())
    ]
