"""Who may call the gateway: people's tokens checked for signature, expiry (with bounded
skew), audience and issuer; RS256 tokens verified against the identity provider's JWKS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.kit.config import Settings
from services.kit.testing import serve
from tests.gateway.conftest import GATEWAY

VIEWER = {"query": "{ viewer { userId role teamId } }"}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {
        "iss": GATEWAY.jwt_issuer,
        "aud": GATEWAY.jwt_audience,
        "sub": "M0001",
        "role": "manager",
        "team": "T001",
        "iat": now,
        "exp": now + 300,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


async def ask(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token}"})


async def test_development_tokens_are_checked_claim_by_claim(
    gateway: httpx.AsyncClient,
) -> None:
    secret = GATEWAY.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    good = await ask(gateway, jwt.encode(claims(), secret, algorithm="HS256"))
    assert good.json()["data"]["viewer"] == {"userId": "M0001", "role": "manager", "teamId": "T001"}

    now = int(time.time())
    refused = {
        "wrong audience": claims(aud="someone-else"),
        "wrong issuer": claims(iss="evil"),
        "expired beyond the skew": claims(exp=now - GATEWAY.jwt_leeway_seconds - 5),
        "no expiry": claims(exp=None),
        "unknown role": claims(role="root"),
        "a partner's role": claims(role="partner"),
    }
    for why, payload in refused.items():
        response = await ask(gateway, jwt.encode(payload, secret, algorithm="HS256"))
        assert response.status_code == 401, why
        assert response.json()["code"] == "unauthorized", why
    forged = await ask(
        gateway, jwt.encode(claims(), "another-secret-of-32-bytes-or-more", algorithm="HS256")
    )
    assert forged.status_code == 401
    within_skew = await ask(gateway, jwt.encode(claims(exp=now - 5), secret, algorithm="HS256"))
    assert within_skew.status_code == 200
    assert (
        await gateway.post("/graphql", json=VIEWER, headers={"Authorization": "Basic x"})
    ).status_code == 401


@pytest.fixture
async def identity_provider() -> AsyncIterator[tuple[str, rsa.RSAPrivateKey, list[int]]]:
    """A JWKS endpoint, counting how often it is asked."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid="k1", use="sig", alg="RS256")
    asked = [0]
    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        asked[0] += 1
        return {"keys": [jwk]}

    async with serve(app) as url:
        yield f"{url}/.well-known/jwks.json", key, asked


async def test_production_tokens_are_verified_against_the_jwks(
    routed: Settings, identity_provider: tuple[str, rsa.RSAPrivateKey, list[int]]
) -> None:
    url, key, asked = identity_provider
    settings = GatewaySettings(jwks_url=url, jwt_issuer="https://idp.example", jwt_audience="kw")
    app = create_gateway(routed, settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            payload = claims(iss="https://idp.example", aud="kw")
            token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})
            for _ in range(3):
                response = await ask(client, token)
                assert response.json()["data"]["viewer"]["userId"] == "M0001"
            assert asked[0] == 1, "the keys are cached, not fetched per request"

            hs = jwt.encode(payload, "a-shared-secret-of-32-bytes-or-more", algorithm="HS256")
            assert (await ask(client, hs)).status_code == 401
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            forged = jwt.encode(payload, other, algorithm="RS256", headers={"kid": "k1"})
            assert (await ask(client, forged)).status_code == 401
