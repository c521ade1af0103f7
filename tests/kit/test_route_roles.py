"""Every route of every service declares its roles, and a role outside them gets 403.

The routes come from the apps themselves (services.kit.access reads every route of the
router), so a new route is covered the day it is added; the factory refuses an app whose
authenticated route declares nothing. Partners never receive a phone number in full.
"""

from __future__ import annotations

import importlib
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from services.kit.access import authenticated, route_roles, routes, undeclared
from services.kit.auth import Role, Scope
from services.kit.config import SERVICES
from tests.conftest import AppClient
from tests.profile.conftest import customer


def create(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    return app


# Routes anyone may call, each for its reason; any other route needs a token and roles.
PUBLIC = {
    ("GET", "/healthz"),  # probes
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # Prometheus
    ("GET", "/openapi.json"),  # the API's own description
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/sms/receipts/{provider}"),  # care: the SMS provider, with its own token
    ("POST", "/sms/uplinks/{provider}"),  # care: customers' replies, the provider's token
}

MSISDN = "13812345678"
MANAGER_PHONE = "13900000001"


def sample(name: str, schema: dict[str, Any]) -> str:
    """A syntactically valid value for a path parameter."""
    kind, form = schema.get("type"), schema.get("format")
    if form == "uuid":
        return str(uuid.uuid4())
    if kind == "integer":
        return "1"
    if form == "date":
        return "2026-12-01"
    if "enum" in schema:
        return str(schema["enum"][0])
    for option in schema.get("anyOf", []) + schema.get("allOf", []):
        if "enum" in option or "const" in option:
            return str(option.get("enum", [option.get("const")])[0])
    return {"msisdn": MSISDN, "manager_id": "M1", "team_id": "T1"}.get(name, "x1")


def concrete(app: FastAPI, method: str, path: str) -> str:
    operation = app.openapi()["paths"][path][method.lower()]
    values = {
        p["name"]: sample(p["name"], p.get("schema", {}))
        for p in operation.get("parameters", [])
        if p["in"] == "path"
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def body_of(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    """A body of a media type the route takes (its content need not be valid: roles are
    checked before the body is)."""
    request = app.openapi()["paths"][path][method.lower()].get("requestBody")
    if request is None:
        return {}
    media_type = next(iter(request["content"]))
    if media_type == "application/json":
        return {"json": {}}
    return {"content": b"msisdn\n", "headers": {"content-type": media_type}}


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_public_by_name_or_declares_its_roles(service: str) -> None:
    app = create(service)
    assert undeclared(app) == []
    declared = route_roles(app)
    for key, dependant in routes(app):
        if authenticated(dependant):
            assert key in declared
        else:
            assert key in PUBLIC, f"{key} answers without a token and is not listed as public"
    assert len(declared) >= 10


@pytest.mark.parametrize("service", SERVICES)
async def test_a_role_outside_a_route_s_roles_gets_403(
    service: str, app_client: AppClient, token: Any
) -> None:
    app = create(service)
    calls = 0
    async with app_client(app, role=None) as client:
        for (method, path), allowed in sorted(route_roles(app).items()):
            url = concrete(app, method, path)
            body = body_of(app, method, path)
            for role in Role:
                if role in allowed:
                    continue
                auth = {"Authorization": f"Bearer {token(role.value, team='T1')}"}
                headers = {**body.pop("headers", {}), **auth} if "headers" in body else auth
                response = await client.request(method, url, headers=headers, **body)
                body = body_of(app, method, path)
                calls += 1
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.json()["code"] in ("forbidden",), response.text
    assert calls > 0


_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


async def test_partners_never_receive_a_number_in_full(app_client: AppClient, token: Any) -> None:
    profile = create("profile")
    async with app_client(profile) as admin:
        team = {"id": "T1", "name": "团队", "region": "广东", "supervisor_name": "周敏"}
        assert (await admin.post("/teams", json=team)).status_code == 201
        manager = {"id": "M1", "name": "李娜", "phone": MANAGER_PHONE, "team_id": "T1"}
        assert (await admin.post("/managers", json=manager)).status_code == 201
        created = await admin.post("/customers", json=customer(MSISDN))
        assert created.status_code == 201, created.text
        contact = {"channel": "call", "outcome": "reached", "note": "回访"}
        await admin.post(f"/customers/{MSISDN}/contacts", json=contact)
    checked, served = 0, []
    for service in SERVICES:
        app = profile if service == "profile" else create(service)
        every_scope = list(Scope)
        async with app_client(app, role="partner", user="partner-x", scopes=every_scope) as client:
            for (method, path), allowed in sorted(route_roles(app).items()):
                if method != "GET" or Role.partner not in allowed:
                    continue
                response = await client.get(concrete(app, method, path))
                checked += 1
                assert response.status_code < 500, (path, response.text)
                shown = set(_MOBILE.findall(response.text))
                assert not shown, (path, shown, response.text[:300])
                if (service, path) in {("profile", "/customers"), ("profile", "/managers")}:
                    served.append(response.text)
    assert checked >= 14
    # the partner was served the seeded rows, masked
    assert "138****5678" in served[0] and "139****0001" in served[1]


@pytest.mark.parametrize("service", SERVICES)
async def test_a_partner_without_a_route_s_scope_gets_403(
    service: str, app_client: AppClient, token: Any
) -> None:
    """The services check a partner's scopes themselves (the token carries its API key's),
    not only the gateway: each scoped route refuses a partner holding every scope but its."""
    app = create(service)
    scoped = app.state.route_scopes
    if service == "care":
        assert scoped == {}  # partners have no access to care at all
        return
    assert scoped
    async with app_client(app, role=None) as client:
        for (method, path), needed in sorted(scoped.items()):
            others = [s for s in Scope if s is not needed]
            body = body_of(app, method, path)
            auth = {"Authorization": f"Bearer {token('partner', user='p', scopes=others)}"}
            headers = {**body.pop("headers", {}), **auth} if "headers" in body else auth
            response = await client.request(
                method, concrete(app, method, path), headers=headers, **body
            )
            assert response.status_code == 403, (method, path, response.text)
            assert needed.value in response.json()["message"], response.text
