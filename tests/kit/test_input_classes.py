"""Every class of input no route can take answers 4xx naming the field, on every service
(services/kit/inputs.py at the edge, services/kit/errors.py as the net)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from fastapi import FastAPI

from services.kit.config import Settings
from tests.conftest import AppClient


def create(service: str, settings: Settings | None = None) -> FastAPI:
    module = importlib.import_module(f"services.{service}.app")
    app: FastAPI = module.create_app(settings) if settings else module.create_app()
    return app


CAMPAIGN = {"name": "x", "template": "hello"}
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("service", "method", "path", "kwargs", "status", "field", "code"),
    [
        # integers past the column (int4: the database's refusal) or past bigint (the edge)
        ("warning", "GET", "/rules/1376213225244523520", {}, 422, "version", "out_of_range"),
        ("warning", "GET", "/rules/99999999999999999999", {}, 422, "version", "int_out_of_range"),
        ("complaint", "GET", "/complaints/9223372036854775808", {}, 422, "complaint_id", None),
        ("care", "GET", "/campaigns?offset=9223372036854775808", {}, 422, "offset", None),
        ("care", "POST", "/campaigns", {"json": {**CAMPAIGN, "x": 2**64}}, 422, "x", None),
        # NUL and lone surrogates, in a body, a query, a path
        (
            "care",
            "POST",
            "/campaigns",
            {"json": {**CAMPAIGN, "name": "a\x00b"}},
            422,
            "name",
            "string_nul",
        ),
        (
            "care",
            "POST",
            "/campaigns",
            {"content": b'{"name": "a\\ud800", "template": "x"}', "headers": JSON},
            422,
            "name",
            "string_unicode",
        ),
        (
            "care",
            "POST",
            "/campaigns",
            {
                "content": b'{"name": "n", "template": "x", "taboo_tags": ["\\u0000"]}',
                "headers": JSON,
            },
            422,
            "taboo_tags.0",
            "string_nul",
        ),
        ("profile", "GET", "/customers?q=a%00b", {}, 422, "q", "string_nul"),
        ("profile", "GET", "/teams/a%00b", {}, 422, "team_id", "string_nul"),
        # numbers that are not finite
        (
            "care",
            "POST",
            "/campaigns",
            {"content": b'{"name": "n", "template": "x", "control_percent": NaN}', "headers": JSON},
            422,
            "control_percent",
            "float_not_finite",
        ),
        # media types a route does not take
        (
            "care",
            "POST",
            "/campaigns",
            {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
            415,
            "content-type",
            None,
        ),
        (
            "care",
            "POST",
            "/campaigns",
            {
                "content": b"name=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "content-type",
            None,
        ),
        ("care", "POST", "/campaigns", {"content": b'{"name": "x"}'}, 415, "content-type", None),
        (
            "profile",
            "POST",
            "/customers/import",
            {"content": b"msisdn\n", "headers": {"content-type": "multipart/form-data"}},
            415,
            "content-type",
            None,
        ),
        # malformed JSON
        (
            "care",
            "POST",
            "/campaigns",
            {"content": b"{", "headers": JSON},
            422,
            "body",
            "json_invalid",
        ),
        # dates out of range
        ("care", "POST", "/plan/0000-01-01", {}, 422, "day", None),
        ("care", "POST", "/plan/99999-01-01", {}, 422, "day", None),
        ("care", "POST", "/plan/9999-12-31", {}, 422, "day", "date_out_of_range"),
        ("profile", "GET", "/reports/reach?from=2026-01-01&to=9999-12-31", {}, 422, "to", None),
    ],
)
async def test_input_no_route_can_take_is_refused_naming_the_field(
    service: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    field: str,
    code: str | None,
    app_client: AppClient,
) -> None:
    async with app_client(create(service)) as client:
        response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    if code is not None:
        assert body["details"][0]["code"] == code


async def test_multipart_without_boundary_on_a_route_without_body_is_ignored(
    app_client: AppClient,
) -> None:
    async with app_client(create("care")) as client:
        response = await client.post(
            "/plan/2026-12-01", content=b"x", headers={"content-type": "multipart/form-data"}
        )
    assert response.status_code == 200


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    app_client: AppClient, settings: Settings
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    async with app_client(create("care", small)) as client:
        too_big = await client.post("/campaigns", json={**CAMPAIGN, "template": "x" * 2000})
        fits = await client.post("/campaigns", json=CAMPAIGN)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "payload_too_large"
    assert fits.status_code == 201


async def test_the_customer_import_has_its_own_larger_limit(
    app_client: AppClient, settings: Settings
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    csv = "msisdn,name\n" + "".join(f"1380013{i:04d},客户{i}\n" for i in range(200))
    assert len(csv.encode()) > 1024
    async with app_client(create("profile", small)) as client:
        response = await client.post(
            "/customers/import", content=csv.encode(), headers={"content-type": "text/csv"}
        )
    assert response.status_code == 200, response.text
