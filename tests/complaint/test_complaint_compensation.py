"""Compensation: approval thresholds per kind, no self-approval, admin above the second
amount, execution only once approved, an append-only audit trail, the 12-month total."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from complaint_support import Api, complaint_body, scalar
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

MANAGER = {"role": "manager", "user": "m1", "team": "t1"}
SUPERVISOR = {"role": "supervisor", "user": "sup-1", "team": "t1"}


async def acknowledged_ticket(client: Any) -> dict[str, Any]:
    ticket = (await client.post("/complaints", json=complaint_body())).json()
    r = await client.post(
        f"/complaints/{ticket['id']}/acknowledge", json={"version": 1, "emotion": "致歉并安抚"}
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def request(client: Any, ticket: dict[str, Any], kind: str, amount: str) -> Any:
    return await client.post(
        f"/complaints/{ticket['id']}/compensations",
        json={"kind": kind, "amount": amount, "reason": "基站故障影响使用"},
    )


async def test_below_the_threshold_it_is_approved_and_executed_by_the_handler(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await acknowledged_ticket(client)
        r = await request(client, ticket, "bill_credit", "30.50")
        assert r.status_code == 201, r.text
        comp = r.json()
        assert comp["status"] == "approved" and comp["approval"] == "none"
        assert comp["amount"] == "30.50"
        done = await client.post(f"/compensations/{comp['id']}/execute", json={})
        assert done.status_code == 200 and done.json()["status"] == "executed"
        detail = (await client.get(f"/complaints/{ticket['id']}")).json()
        assert detail["compensation"]["customer_total_12_months"] == "30.50"
        trail = (await client.get(f"/complaints/{ticket['id']}/compensations")).json()["audit"]
        assert [a["action"] for a in trail] == ["requested", "approved", "executed"]


async def test_above_the_threshold_it_waits_for_a_supervisor_who_is_not_the_requester(
    api: Api,
) -> None:
    async with api(**SUPERVISOR) as supervisor:
        ticket = await acknowledged_ticket(supervisor)
        own = (await request(supervisor, ticket, "bill_credit", "80.00")).json()
        assert own["status"] == "requested" and own["approval"] == "supervisor"
        refused = await supervisor.post(f"/compensations/{own['id']}/approve", json={})
        assert refused.status_code == 403 and "their own" in refused.json()["message"]
    async with api(**MANAGER) as manager:
        early = await manager.post(f"/compensations/{own['id']}/execute", json={})
        assert early.status_code == 409 and early.json()["code"] == "invalid_transition"
        assert (
            await manager.post(f"/compensations/{own['id']}/approve", json={})
        ).status_code == 403
        mine = (await request(manager, ticket, "data_pack", "40")).json()
        assert mine["approval"] == "supervisor"
    async with api(**SUPERVISOR) as supervisor:
        ok = await supervisor.post(f"/compensations/{mine['id']}/approve", json={"reason": "合理"})
        assert ok.status_code == 200 and ok.json()["status"] == "approved"
        twice = await supervisor.post(f"/compensations/{mine['id']}/approve", json={})
        assert twice.status_code == 409
    async with api("supervisor", user="sup-2", team="t2") as stranger:
        assert (
            await stranger.post(f"/compensations/{own['id']}/approve", json={})
        ).status_code == 404
    async with api("admin", user="admin-1") as admin:
        ok = await admin.post(f"/compensations/{own['id']}/reject", json={"reason": "金额过高"})
        assert ok.status_code == 200 and ok.json()["status"] == "rejected"


async def test_above_the_second_amount_only_an_admin_approves(api: Api) -> None:
    async with api(**MANAGER) as manager:
        ticket = await acknowledged_ticket(manager)
        big = (await request(manager, ticket, "gift", "1500.00")).json()
        assert big["approval"] == "admin"
    async with api(**SUPERVISOR) as supervisor:
        r = await supervisor.post(f"/compensations/{big['id']}/approve", json={})
        assert r.status_code == 403 and "admin" in r.json()["message"]
    async with api("admin", user="admin-1") as admin:
        assert (await admin.post(f"/compensations/{big['id']}/approve", json={})).status_code == 200
    async with api(**MANAGER) as manager:
        done = await manager.post(f"/compensations/{big['id']}/execute", json={})
        assert done.status_code == 200
        detail = (await manager.get(f"/complaints/{ticket['id']}")).json()
        assert Decimal(detail["compensation"]["customer_total_12_months"]) == Decimal("1500.00")


@pytest.mark.parametrize(
    ("amount", "kind"),
    [
        ("-5", "bill_credit"),
        ("0", "bill_credit"),
        ("1000000", "gift"),
        ("1.234", "points"),
        ("abc", "gift"),
    ],
)
async def test_negative_zero_absurd_or_sub_fen_amounts_are_refused(
    api: Api, engine: AsyncEngine, amount: str, kind: str
) -> None:
    async with api(**MANAGER) as client:
        ticket = await acknowledged_ticket(client)
        r = await request(client, ticket, kind, amount)
    assert r.status_code == 422 and r.json()["field"] == "amount", r.text
    assert await scalar(engine, "SELECT count(*) FROM complaint.compensation") == 0
    assert await scalar(engine, "SELECT count(*) FROM complaint.compensation_audit") == 0


async def test_compensation_before_the_mood_is_acknowledged_is_refused(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = (await client.post("/complaints", json=complaint_body())).json()
        r = await request(client, ticket, "bill_credit", "10")
        assert r.status_code == 409 and "state: new" in r.json()["message"]


async def test_the_audit_trail_cannot_be_changed(api: Api, engine: AsyncEngine) -> None:
    async with api(**MANAGER) as client:
        ticket = await acknowledged_ticket(client)
        await request(client, ticket, "bill_credit", "10")
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE complaint.compensation_audit SET reason = 'x'"))
