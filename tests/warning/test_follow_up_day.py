"""A manager's follow-up as the warning API serves it (issue #19, items 12-14)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from warning_support import DAY, History, World

from services.kit import clock
from services.warning.app import create_app

M = "13800138001"


async def _two_warnings(world: World) -> list[int]:
    await world.customer(M, manager_id="M0001", team_id="T001", contract_end=DAY + timedelta(5))
    await world.usage(History(M).set(range(6), outgoing_calls=0, minutes=0))
    await world.detect()
    ids = [w.id or 0 for w in await world.warnings(M)]
    assert len(ids) >= 2
    return ids


async def test_one_contact_is_recorded_against_all_open_warnings_and_logged_once(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _two_warnings(world)
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        response = await client.post(
            f"/subscribers/{M}/contacts",
            json={"channel": "call", "outcome": "reached", "note": "一次电话谈了合约和用量"},
        )
        details = [(await client.get(f"/warnings/{i}")).json() for i in ids]
        none_open = await client.post(
            "/subscribers/13900139000/contacts", json={"channel": "call", "outcome": "reached"}
        )
    async with app_client(create_app(), role="manager", user="M0002", team="T001") as other:
        not_theirs = await other.post(
            f"/subscribers/{M}/contacts", json={"channel": "call", "outcome": "reached"}
        )

    assert response.status_code == 201, response.text
    assert sorted(c["warning_id"] for c in response.json()) == sorted(ids)
    assert all(d["status"] == "in_progress" and len(d["contacts"]) == 1 for d in details)
    logged = [e for e in await world.outbox() if e["type"] == "warning.contact_recorded"]
    assert len(logged) == 1
    assert logged[0]["payload"]["contact"]["note"] == "一次电话谈了合约和用量"
    assert none_open.status_code == 404
    assert not_theirs.status_code == 403


async def test_contacts_dated_in_the_future_are_refused(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _two_warnings(world)
    ahead = (clock.now() + timedelta(hours=1)).isoformat()
    slightly = (clock.now() + timedelta(minutes=1)).isoformat()
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        future = await client.post(
            f"/warnings/{ids[0]}/contacts",
            json={"channel": "call", "outcome": "reached", "at": ahead},
        )
        skewed = await client.post(
            f"/warnings/{ids[0]}/contacts",
            json={"channel": "call", "outcome": "reached", "at": slightly},
        )
    assert (future.status_code, future.json()["field"]) == (422, "at")
    assert skewed.status_code == 201


async def test_the_list_says_its_default_and_risk_of_a_stranger_is_404(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _two_warnings(world)
    async with app_client(create_app(), role="operator") as client:
        await client.post(f"/warnings/{ids[0]}/resolve", json={"outcome": "false_alarm"})
        default = (await client.get("/warnings")).json()
        resolved = (await client.get("/warnings", params={"status": "resolved"})).json()
        known = await client.get(f"/subscribers/{M}/risk")
        stranger = await client.get("/subscribers/13912345678/risk")
        openapi = (await client.get("/openapi.json")).json()

    assert ids[0] not in [w["id"] for w in default]
    assert [w["id"] for w in resolved] == [ids[0]]
    assert known.status_code == 200
    assert (stranger.status_code, stranger.json()["code"]) == (404, "customer_not_found")
    [status] = [
        p for p in openapi["paths"]["/warnings"]["get"]["parameters"] if p["name"] == "status"
    ]
    assert "open and in_progress" in status["description"]
