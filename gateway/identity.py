"""Who is calling the gateway: people and apps with a bearer JWT from the identity provider.

Production verifies RS256/ES256 tokens against the provider's JWKS (keys cached, fetched
again when a token names a key not yet seen); development uses HS256 with a secret
(``keepwell token --gateway`` mints such tokens). ``exp``, ``aud`` and ``iss`` are checked,
with a bounded clock skew. The caller becomes a :class:`Principal`, which the gateway then
passes to the services in the internal tokens they already verify.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import jwt

from gateway.config import GatewaySettings, jwt_secret
from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.config import Settings
from services.kit.errors import Unauthorized

PERSON_ROLES = frozenset({Role.admin, Role.supervisor, Role.manager, Role.operator})
ASYMMETRIC = ["RS256", "ES256"]


class Verifier:
    """Turns a bearer token into a principal; one per process."""

    def __init__(self, gateway: GatewaySettings, settings: Settings) -> None:
        self.gateway = gateway
        self.jwks = (
            jwt.PyJWKClient(gateway.jwks_url, cache_keys=True, lifespan=gateway.jwks_cache_seconds)
            if gateway.jwks_url is not None
            else None
        )
        self.secret = jwt_secret(gateway, settings) if self.jwks is None else None

    async def principal(self, token: str) -> Principal:
        try:
            if self.jwks is not None:
                # PyJWKClient fetches with urllib: keep the event loop free while it does.
                signing = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
                key: Any = signing.key
                algorithms = ASYMMETRIC
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.gateway.jwt_audience,
                issuer=self.gateway.jwt_issuer,
                leeway=self.gateway.jwt_leeway_seconds,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("令牌已过期，请重新登录") from exc
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise Unauthorized(f"令牌无效：{exc}") from exc
        try:
            role = Role(str(claims.get("role")))
        except ValueError as exc:
            raise Unauthorized(f"令牌中的角色 {claims.get('role')!r} 未知") from exc
        if role not in PERSON_ROLES:
            raise Unauthorized("合作方请使用 API 密钥（X-API-Key），不使用登录令牌")
        team = claims.get("team")
        return Principal(user_id=str(claims["sub"]), role=role, team_id=team and str(team))


def development_token(
    principal: Principal, gateway: GatewaySettings, settings: Settings, ttl_seconds: int
) -> str:
    """A token the gateway accepts, signed with the development secret (HS256)."""
    now = int(clock.now().timestamp())
    claims = {
        "iss": gateway.jwt_issuer,
        "aud": gateway.jwt_audience,
        "sub": principal.user_id,
        "role": principal.role.value,
        "team": principal.team_id,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, jwt_secret(gateway, settings), algorithm="HS256")
