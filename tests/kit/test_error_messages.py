"""Error messages are Chinese in every service, with the stable English ``code`` for
programs; a body that is not JSON is reported on ``body`` with its position (#19, 16-17)."""

from __future__ import annotations

import importlib
import re

import pytest
from fastapi import FastAPI

from services.kit.config import SERVICES
from tests.conftest import AppClient

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def create(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    return app


# One ordinary mistake per service: (method, path, JSON body or None).
MISTAKES: dict[str, list[tuple[str, str, object]]] = {
    "profile": [
        ("GET", "/customers?tier=Gold", None),
        ("POST", "/customers", {"msisdn": "12345"}),
        ("GET", "/customers/13999999999", None),
        ("POST", "/managers", {"id": "M9", "name": "赵敏", "phone": "1380000", "team_id": "T"}),
    ],
    "warning": [
        ("GET", "/warnings/987654", None),
        ("POST", "/warnings/1/resolve", {"outcome": "maybe"}),
        ("GET", "/reports/retention?from=2026-12-02&to=2026-12-01", None),
    ],
    "care": [
        ("POST", "/campaigns", {"name": "x"}),
        ("GET", "/campaigns/00000000-0000-0000-0000-000000000000", None),
    ],
    "complaint": [("GET", "/no-such-route", None)],
}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_answers_in_chinese_with_an_english_code(
    service: str, app_client: AppClient
) -> None:
    async with app_client(create(service)) as client:
        answers = [
            await client.request(method, path, json=body)
            for method, path, body in MISTAKES[service] + [("GET", "/no-such-route", None)]
        ]
    async with app_client(create(service), role=None) as anonymous:
        answers.append(await anonymous.get("/event-types"))
    for answer in answers:
        body = answer.json()
        assert answer.status_code >= 400, body
        assert CHINESE.search(body["message"]), (service, body)
        assert re.fullmatch(r"[a-z_]+", body["code"]), body
        assert "Value error" not in body["message"]


@pytest.mark.parametrize("service", SERVICES)
async def test_a_body_that_is_not_json_is_reported_on_body_with_its_position(
    service: str, app_client: AppClient
) -> None:
    async with app_client(create(service)) as client:
        answer = await client.post(
            "/webhooks",
            content=b'{"url": "https://x.example", "event_types": [,]}',
            headers={"content-type": "application/json"},
        )
    body = answer.json()
    assert answer.status_code == 422, body
    assert body["field"] == "body"
    assert body["details"][0]["field"] == "body"
    assert body["message"].startswith("请求体不是合法的 JSON：第 46 个字符处"), body["message"]
