"""Who is acting: a short-lived token, signed (EdDSA) by one of the known signers.

People's tokens are signed with the user key (the gateway, and ``keepwell token`` for
operators' scripts); internal callers sign with keys of their own: the relay (accepted at
``POST /events`` and nowhere else) and the read-model rebuilds (``GET /customers`` on
profile and nothing else). A service holds only the public keys: it verifies tokens and
cannot mint one. The key that signed a token decides what it may claim: a token of an
internal caller is confined to that caller's routes, whatever else it says, and only the
relay's key admits a caller to ``/events``. Services use the principal for authorisation
(row scoping by role and team) and to record who did what.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel

from services.kit.config import Settings, get_settings
from services.kit.errors import Forbidden, Unauthorized
from services.kit.keys import MissingKey, Signer, public_key, signing_key

ISSUER = "keepwell"
AUDIENCE = "keepwell-internal"
ALGORITHM = "EdDSA"


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    manager = "manager"
    operator = "operator"
    partner = "partner"


class Scope(StrEnum):
    """What a partner's API key may do (the gateway's keys carry them; a partner's token
    carries its key's, and a service route that names one admits a partner only with it)."""

    customers_read = "customers:read"
    warnings_read = "warnings:read"
    complaints_read = "complaints:read"
    usage_write = "usage:write"


class Principal(BaseModel, frozen=True):
    user_id: str
    role: Role
    team_id: str | None = None
    caller: Signer | None = None
    """An internal caller (``relay``, ``rebuild``); ``None`` for a person."""
    scopes: frozenset[Scope] = frozenset()
    """A partner's scopes (its API key's); meaningless for any other role."""


@dataclass(frozen=True)
class InternalCaller:
    """What one internal caller may call, and the role its reads are scoped as."""

    role: Role
    routes: frozenset[tuple[str | None, str, str]]  # (service or any, method, route path)

    def allows(self, service: str | None, method: str, path: str) -> bool:
        return (service, method, path) in self.routes or (None, method, path) in self.routes


INTERNAL_CALLERS: dict[Signer, InternalCaller] = {
    Signer.relay: InternalCaller(Role.operator, frozenset({(None, "POST", "/events")})),
    # Operators' scoping: every customer, full numbers; nothing but this list.
    Signer.rebuild: InternalCaller(Role.operator, frozenset({("profile", "GET", "/customers")})),
}


def relay_principal(producer: str) -> Principal:
    """Who a producer's relay acts as when it delivers events."""
    return Principal(user_id=f"system:relay:{producer}", role=Role.operator, caller=Signer.relay)


def rebuild_principal(acting_as: str) -> Principal:
    """Who a read-model rebuild acts as when it reads profile's customers."""
    return Principal(user_id=acting_as, role=Role.operator, caller=Signer.rebuild)


def issue_token(principal: Principal, settings: Settings, ttl_seconds: int | None = None) -> str:
    """A token for ``principal``, signed with its signer's private key (the user key for a
    person); fails if this process does not hold that key."""
    now = int(time.time())
    ttl = ttl_seconds if ttl_seconds is not None else settings.internal_token_ttl_seconds
    signer = principal.caller or Signer.user
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.user_id,
        "role": principal.role.value,
        "team": principal.team_id,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if principal.caller is not None:
        claims["caller"] = principal.caller.value
    if principal.role is Role.partner:
        claims["scopes"] = sorted(principal.scopes)
    key = signing_key(settings, signer)
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": signer.value})


def verify_token(token: str, settings: Settings) -> Principal:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        signer = Signer(str(kid))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise Unauthorized("内部令牌无效：签发方（kid）未知") from exc
    try:
        key = public_key(settings, signer)
    except MissingKey as exc:
        raise Unauthorized(f"此处不接受 {signer.value} 签发的令牌") from exc
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("内部令牌已过期") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"内部令牌无效：{exc}") from exc
    if signer is not Signer.user:
        # The key decides: an internal caller is what its key says, whatever it claims.
        caller = INTERNAL_CALLERS[signer]
        return Principal(user_id=str(claims["sub"]), role=caller.role, caller=signer)
    if claims.get("caller") is not None:
        raise Unauthorized("用户令牌不能冒充内部调用方")
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise Unauthorized(f"令牌中的角色 {claims.get('role')!r} 未知") from exc
    scopes: frozenset[Scope] = frozenset()
    if role is Role.partner:
        try:
            scopes = frozenset(Scope(str(s)) for s in claims.get("scopes") or ())
        except ValueError as exc:
            raise Unauthorized(f"令牌中的权限 {claims.get('scopes')!r} 未知") from exc
    return Principal(
        user_id=str(claims["sub"]), role=role, team_id=claims.get("team"), scopes=scopes
    )


def _confine(principal: Principal, request: Request) -> None:
    """An internal caller's token is good on its own routes only."""
    if principal.caller is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    service = getattr(request.app.state, "service", None)
    if not INTERNAL_CALLERS[principal.caller].allows(service, request.method, path):
        raise Forbidden(f"内部身份 {principal.caller.value} 无权调用 {request.method} {path}")


def _admit(principal: Principal, request: Request) -> None:
    """The roles the service's registry declares for this route, and the scope a partner
    needs on it (services.kit.access)."""
    declared: dict[tuple[str, str], tuple[Role, ...]] = getattr(
        request.app.state, "route_roles", {}
    )
    route = request.scope.get("route")
    key = (request.method, getattr(route, "path", ""))
    roles = declared.get(key)
    if roles is not None and principal.role is not Role.admin and principal.role not in roles:
        raise Forbidden(refusal(principal, roles))
    if principal.role is Role.partner:
        scopes: dict[tuple[str, str], Scope] = getattr(request.app.state, "route_scopes", {})
        needed = scopes.get(key)
        if needed is not None and needed not in principal.scopes:
            raise Forbidden(f"合作方令牌没有 {needed.value} 权限，无权调用此接口")


_PRINCIPAL = "keepwell.principal"


async def current_principal(request: Request) -> Principal:
    """The acting principal; refuses the call with 401 when there is no valid token."""
    # Kept in the request's own scope: request.state can be shared by every request of an
    # app (an ASGI server gives each a copy of the lifespan state, test transports do not).
    cached = request.scope.get(_PRINCIPAL)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization 请求头缺少 Bearer 令牌")
    principal = verify_token(token.strip(), get_settings())
    _confine(principal, request)
    _admit(principal, request)
    request.scope[_PRINCIPAL] = principal
    return principal


def principal_of(request: Request) -> Principal | None:
    """Who the request acts as, once :func:`current_principal` admitted it (None before, or
    on a route without a token, such as a provider's push)."""
    found = request.scope.get(_PRINCIPAL)
    return found if isinstance(found, Principal) else None


Acting = Annotated[Principal, Depends(current_principal)]


class RoleGate:
    """A dependency that admits only its roles (admin is always admitted). The roles stay on
    the route's dependency, so :mod:`services.kit.access` reads what each route allows."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = frozenset(roles) | {Role.admin}
        self.named = roles

    async def __call__(self, principal: Acting) -> Principal:
        if principal.role not in self.roles:
            raise Forbidden(refusal(principal, self.named))
        return principal


def refusal(principal: Principal, roles: tuple[Role, ...]) -> str:
    allowed = ", ".join(r.value for r in roles) or Role.admin.value
    return f"角色 {principal.role.value} 无权执行此操作；须为以下角色之一：{allowed}"


def require_role(*roles: Role) -> RoleGate:
    """A dependency that admits only the given roles (admin is always admitted)."""
    return RoleGate(roles)


class CallerGate:
    """A dependency that admits only the internal caller ``signer`` (no person, not even
    an admin): ``POST /events`` takes events from the relay alone."""

    roles: frozenset[Role] = frozenset()

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    async def __call__(self, principal: Acting) -> Principal:
        if principal.caller is not self.signer:
            raise Forbidden(f"只有内部身份 {self.signer.value} 可以执行此操作")
        return principal


def require_caller(signer: Signer) -> CallerGate:
    return CallerGate(signer)
