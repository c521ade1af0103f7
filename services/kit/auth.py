"""Who is acting: a short-lived token signed with the internal key.

The gateway (and the ``keepwell`` command, for operators' scripts) issues tokens; every
service verifies them. Services use the principal for authorisation and to record who
did what.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel

from services.kit.config import Settings, get_settings
from services.kit.errors import Forbidden, Unauthorized

ISSUER = "keepwell"
AUDIENCE = "keepwell-internal"
ALGORITHM = "HS256"


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    manager = "manager"
    operator = "operator"
    partner = "partner"


class Principal(BaseModel, frozen=True):
    user_id: str
    role: Role
    team_id: str | None = None


def issue_token(principal: Principal, settings: Settings, ttl_seconds: int | None = None) -> str:
    now = int(time.time())
    ttl = ttl_seconds if ttl_seconds is not None else settings.internal_token_ttl_seconds
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
    return jwt.encode(claims, settings.internal_key.get_secret_value(), algorithm=ALGORITHM)


def verify_token(token: str, settings: Settings) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.internal_key.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("内部令牌已过期") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"内部令牌无效：{exc}") from exc
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise Unauthorized(f"令牌中的角色 {claims.get('role')!r} 未知") from exc
    return Principal(user_id=str(claims["sub"]), role=role, team_id=claims.get("team"))


async def current_principal(request: Request) -> Principal:
    """The acting principal; refuses the call with 401 when there is no valid token."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization 请求头缺少 Bearer 令牌")
    principal = verify_token(token.strip(), get_settings())
    request.state.principal = principal
    return principal


Acting = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits only the given roles (admin is always admitted)."""

    async def dependency(principal: Acting) -> Principal:
        if principal.role is not Role.admin and principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(
                f"角色 {principal.role.value} 无权执行此操作；须为以下角色之一：{allowed}"
            )
        return principal

    return dependency
