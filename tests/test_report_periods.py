"""Report periods read the same way in every service, and the service reach rate has one
definition, profile's (issue #19, items 8 and 9)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from services.care.app import create_app as care_app
from services.kit import clock
from services.kit.periods import TO_DESCRIPTION
from services.profile.app import create_app as profile_app
from services.warning.app import create_app as warning_app

REPORTS: list[tuple[Callable[[], FastAPI], str]] = [
    (profile_app, "/reports/reach"),
    (warning_app, "/reports/retention"),
    (warning_app, "/reports/churn-reasons"),
]


async def test_every_report_takes_from_and_to_as_beijing_days_with_to_excluded(
    app_client: Callable[..., Any],
) -> None:
    for create, path in REPORTS:
        async with app_client(create()) as client:
            openapi = (await client.get("/openapi.json")).json()
        parameters = {p["name"]: p for p in openapi["paths"][path]["get"]["parameters"]}
        assert {"from", "to"} <= set(parameters), path
        assert not {"start", "end"} & set(parameters), path
        assert parameters["to"]["description"].startswith(TO_DESCRIPTION), path
        assert parameters["from"]["schema"]["format"] == "date", path


async def test_a_reversed_period_is_refused_the_same_way_everywhere(
    app_client: Callable[..., Any],
) -> None:
    today = clock.today()
    params = {"from": str(today), "to": str(today - timedelta(days=1))}
    answers = []
    for create, path in REPORTS:
        async with app_client(create()) as client:
            answers.append((await client.get(path, params=params)).json() | {"path": path})
    for answer in answers:
        assert (answer["code"], answer["field"]) == ("invalid", "to"), answer
    assert len({a["message"] for a in answers}) == 1


async def test_care_has_no_reach_kpi_of_its_own(app_client: Callable[..., Any]) -> None:
    async with app_client(care_app()) as client:
        openapi = (await client.get("/openapi.json")).json()
        answer = await client.get("/kpis/reach")
    assert not [p for p in openapi["paths"] if "reach" in p]
    assert answer.status_code == 404
