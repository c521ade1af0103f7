"""Who may mint what: people's tokens, the relay's and the rebuilds' are told apart by the
key that signed them, and each internal identity is good only where it is needed."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from services.kit import keys
from services.kit.auth import Principal, Role, issue_token, rebuild_principal, relay_principal
from services.kit.config import Settings
from services.kit.keys import Signer
from services.kit.testing import Infra

FORGED_CHURN = {
    "events": [
        {
            "id": "6f1c1d8e-0000-4000-8000-000000000001",
            "seq": 1,
            "type": "customer.churned",
            "version": 1,
            "producer": "profile",
            "aggregate_id": "13812345678",
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {},
        }
    ]
}


def create(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    return app


@asynccontextmanager
async def calling(service: str, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with LifespanManager(create(service)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            yield client


def person(settings: Settings, role: Role = Role.admin) -> str:
    return issue_token(Principal(user_id="someone", role=role), settings)


@pytest.mark.parametrize("service", ["warning", "care"])
async def test_an_admin_cannot_post_a_forged_event(
    infra: Infra, settings: Settings, service: str
) -> None:
    async with calling(service, person(settings)) as client:
        response = await client.post("/events", json=FORGED_CHURN)
    assert response.status_code == 403, response.text
    assert "relay" in response.json()["message"]


async def test_the_relays_token_is_accepted_at_events_and_nowhere_else(
    infra: Infra, settings: Settings
) -> None:
    relay = issue_token(relay_principal("profile"), settings)
    async with calling("warning", relay) as client:
        delivered = await client.post("/events", json={"events": []})
        whoami = await client.get("/whoami")
        deliveries = await client.get("/events/deliveries")
        webhooks = await client.post(
            "/webhooks",
            json={"partner": "x", "url": "https://x.example/h", "event_types": ["warning.raised"]},
        )
    assert delivered.status_code == 200, delivered.text
    assert [whoami.status_code, deliveries.status_code, webhooks.status_code] == [403] * 3
    async with calling("profile", relay) as client:
        customers = await client.get("/customers")
    assert customers.status_code == 403


async def test_the_rebuild_identity_reads_profiles_customers_and_nothing_else(
    infra: Infra, settings: Settings
) -> None:
    rebuild = issue_token(rebuild_principal("system:care"), settings)
    async with calling("profile", rebuild) as client:
        listed = await client.get("/customers")
        managers = await client.get("/managers")
        created = await client.post("/customers", json={"msisdn": "13812345678"})
        events = await client.post("/events", json={"events": []})
    assert listed.status_code == 200, listed.text
    assert [managers.status_code, created.status_code, events.status_code] == [403] * 3
    async with calling("care", rebuild) as client:
        campaigns = await client.get("/campaigns")
    assert campaigns.status_code == 403


async def test_a_token_signed_by_an_unknown_key_is_refused(
    infra: Infra, settings: Settings
) -> None:
    stranger = settings.model_copy(
        update={f"{s.value}_signing_key": SecretStr(keys.generate()[0]) for s in Signer}
    )
    user_key = keys.signing_key(settings, Signer.user)
    # The gateway's own key cannot pass for the relay's, whatever the header or claims say.
    claims = {"iss": "keepwell", "aud": "keepwell-internal", "sub": "x", "iat": 0,
              "exp": 2**40, "role": "admin", "caller": "relay"}  # fmt: skip
    as_relay = jwt.encode(claims, user_key, algorithm="EdDSA", headers={"kid": "relay"})
    claims_caller = jwt.encode(claims, user_key, algorithm="EdDSA", headers={"kid": "user"})
    hmac = jwt.encode(claims, "k" * 40, algorithm="HS256", headers={"kid": "user"})
    tokens = [
        issue_token(Principal(user_id="x", role=Role.admin), stranger),
        issue_token(relay_principal("profile"), stranger),
        as_relay,
        claims_caller,
        hmac,
    ]
    async with calling("warning", None) as client:
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"}
            for response in (
                await client.get("/whoami", headers=headers),
                await client.post("/events", json={"events": []}, headers=headers),
            ):
                assert response.status_code == 401, response.text
