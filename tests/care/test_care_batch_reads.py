"""The batched reads the gateway's loaders make: tasks and care messages of several numbers."""

from __future__ import annotations

from typing import Any

from care_support import SeedCustomers, snapshot

from services.care import repository
from services.care.app import create_app
from services.kit import clock
from services.kit.app import Resources
from tests.conftest import AppClient

T1_CUSTOMER, T1_OTHER, T2_CUSTOMER = "13800000001", "13800000003", "13800000002"
ALL = [("msisdn", n) for n in ("+86 138-0000-0001", T1_OTHER, T2_CUSTOMER, "13899999999")]
TOO_MANY = [("msisdn", f"1380000{i:04d}") for i in range(101)]


def staff(role: str, user: str, team: str | None = None) -> dict[str, Any]:
    return {"role": role, "user": user, **({"team": team} if team else {})}


async def _customers(seed_customers: SeedCustomers) -> None:
    await seed_customers(
        snapshot(T1_CUSTOMER, name="王建国", manager_id="m1", team_id="t1"),
        snapshot(T1_OTHER, name="李娜", manager_id="m3", team_id="t1"),
        snapshot(T2_CUSTOMER, name="陈丽", manager_id="m2", team_id="t2"),
    )


async def test_tasks_of_several_numbers_with_the_other_filters_and_the_scope(
    app_client: AppClient, seed_customers: SeedCustomers, resources: Resources
) -> None:
    await _customers(seed_customers)
    async with resources.session() as session:
        for msisdn, manager in ((T1_CUSTOMER, "m1"), (T1_OTHER, "m3"), (T2_CUSTOMER, "m2")):
            await repository.add_task(
                session, msisdn=msisdn, manager_id=manager, kind="monthly_call",
                period="2099-01", due_on=clock.today(), note="月度电话回访",
            )  # fmt: skip
    app = create_app()

    async def numbers(client: Any, params: list[tuple[str, str]]) -> list[str]:
        response = await client.get("/tasks", params=params)
        assert response.status_code == 200, response.text
        return sorted(t["msisdn"] for t in response.json())

    async with app_client(app, role="operator", user="op1") as operator:
        assert await numbers(operator, ALL) == [T1_CUSTOMER, T2_CUSTOMER, T1_OTHER]
        assert await numbers(operator, [*ALL, ("manager_id", "m2")]) == [T2_CUSTOMER]
        assert await numbers(operator, [*ALL, ("status", "done")]) == []
        assert await numbers(operator, [("msisdn", T1_OTHER)]) == [T1_OTHER]
        refused = await operator.get("/tasks", params=TOO_MANY)
        assert refused.status_code == 422 and refused.json()["field"] == "msisdn"
    async with app_client(app, **staff("supervisor", "s2", "t2")) as s2:
        assert await numbers(s2, ALL) == [T2_CUSTOMER]
    async with app_client(app, **staff("manager", "m1", "t1")) as m1:
        assert await numbers(m1, ALL) == [T1_CUSTOMER, T1_OTHER]  # the team's
        assert await numbers(m1, [*ALL, ("manager_id", "m1")]) == [T1_CUSTOMER]


async def test_messages_of_several_numbers_across_campaigns_scoped_like_recipients(
    app_client: AppClient, seed_customers: SeedCustomers, start_campaign: Any
) -> None:
    await _customers(seed_customers)
    company_wide = await start_campaign("{honorific}您好，天冷注意保暖。")
    app = create_app()
    async with app_client(app, **staff("manager", "m1", "t1")) as m1:
        draft = {"name": "生日关怀", "template": "{name}您好"}
        team_campaign = (await m1.post("/campaigns", json=draft)).json()
        await m1.post(f"/campaigns/{team_campaign['id']}/preview")
    async with app_client(app, **staff("supervisor", "s1", "t1")) as s1:
        approved = await s1.post(f"/campaigns/{team_campaign['id']}/approve")
        assert approved.status_code == 200, approved.text

    async with app_client(app, role="operator", user="op1") as operator:
        every = (await operator.get("/messages", params=ALL)).json()
        one = (await operator.get("/messages", params={"msisdn": T2_CUSTOMER})).json()
        limited = (await operator.get("/messages", params=[*ALL, ("limit", "2")])).json()
        sent = (await operator.get("/messages", params=[*ALL, ("state", "delivered")])).json()
    async with app_client(app, **staff("supervisor", "s2", "t2")) as s2:
        seen_by_t2 = (await s2.get("/messages", params=ALL)).json()
    async with app_client(app, **staff("manager", "m3", "t1")) as m3:
        seen_by_t1 = (await m3.get("/messages", params=ALL)).json()
    async with app_client(app, role="partner", user="crm-x") as partner:
        partner_status = (await partner.get("/messages", params=ALL)).status_code

    rows = sorted((m["campaign_id"], m["msisdn"]) for m in every)
    assert rows == sorted(
        [
            (str(company_wide), T1_CUSTOMER),
            (str(company_wide), T1_OTHER),
            (str(company_wide), T2_CUSTOMER),
            (team_campaign["id"], T1_CUSTOMER),
            (team_campaign["id"], T1_OTHER),
        ]
    )
    assert {m["campaign_name"] for m in every} == {"测试活动", "生日关怀"}
    assert every[0]["state"] == "queued" and every[0]["sent_at"] is None  # text: at send time
    newest = [(m["sent_at"] or m["due_at"], m["id"]) for m in every]
    assert newest == sorted(newest, reverse=True)
    assert [(m["campaign_id"], m["msisdn"]) for m in one] == [(str(company_wide), T2_CUSTOMER)]
    assert len(limited) == 2 and sent == []
    assert [(m["campaign_id"], m["msisdn"]) for m in seen_by_t2] == [
        (str(company_wide), T2_CUSTOMER)
    ]
    assert {m["msisdn"] for m in seen_by_t1} == {T1_CUSTOMER, T1_OTHER} and len(seen_by_t1) == 4
    assert partner_status == 403


async def test_messages_need_one_to_a_hundred_numbers(app_client: AppClient) -> None:
    async with app_client(create_app(), role="operator", user="op1") as operator:
        assert (await operator.get("/messages", params=TOO_MANY[:100])).status_code == 200
        for params in (TOO_MANY, []):
            refused = await operator.get("/messages", params=params)
            assert refused.status_code == 422 and refused.json()["field"] == "msisdn"
        too_long = await operator.get("/messages", params={"msisdn": T1_CUSTOMER, "limit": 501})
        assert too_long.status_code == 422 and too_long.json()["field"] == "limit"
