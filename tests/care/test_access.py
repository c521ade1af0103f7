"""Who sees and changes which campaigns, recipients and tasks in care."""

from __future__ import annotations

from typing import Any

from care_support import SeedCustomers, snapshot

from services.care import repository
from services.care.app import create_app
from services.kit import clock
from services.kit.app import Resources
from tests.conftest import AppClient

T1_CUSTOMER, T2_CUSTOMER = "13800000001", "13800000002"


async def two_teams(seed_customers: SeedCustomers) -> None:
    await seed_customers(
        snapshot(T1_CUSTOMER, name="王建国", manager_id="m1", team_id="t1"),
        snapshot(T2_CUSTOMER, name="陈丽", manager_id="m2", team_id="t2"),
    )


def staff(role: str, user: str, team: str | None = None) -> dict[str, Any]:
    return {"role": role, "user": user, **({"team": team} if team else {})}


async def test_a_team_campaign_is_seen_changed_and_approved_only_within_its_team(
    app_client: AppClient, seed_customers: SeedCustomers
) -> None:
    await two_teams(seed_customers)
    app = create_app()
    draft = {"name": "生日关怀", "template": "{name}您好"}
    async with app_client(app, **staff("manager", "m1", "t1")) as m1:
        campaign = (await m1.post("/campaigns", json=draft)).json()
        preview = (await m1.post(f"/campaigns/{campaign['id']}/preview")).json()
    cid = campaign["id"]
    async with app_client(app, **staff("manager", "m2", "t2")) as m2:
        listed = [c["id"] for c in (await m2.get("/campaigns")).json()]
        other_team_reads = (await m2.get(f"/campaigns/{cid}")).status_code
        other_team_edits = (await m2.patch(f"/campaigns/{cid}", json={"name": "x"})).status_code
    async with app_client(app, **staff("manager", "m3", "t1")) as m3:
        colleague_reads = (await m3.get(f"/campaigns/{cid}")).status_code
        colleague_edits = (await m3.patch(f"/campaigns/{cid}", json={"name": "x"})).status_code
    async with app_client(app, **staff("supervisor", "s2", "t2")) as s2:
        other_supervisor = (await s2.post(f"/campaigns/{cid}/approve")).status_code
    async with app_client(app, **staff("supervisor", "s1", "t1")) as s1:
        approved = await s1.post(f"/campaigns/{cid}/approve")
        own = (await s1.post("/campaigns", json=draft)).json()
        await s1.post(f"/campaigns/{own['id']}/preview")
        self_approval = await s1.post(f"/campaigns/{own['id']}/approve")
    async with app_client(app, **staff("partner", "crm-x")) as partner:
        partner_lists = (await partner.get("/campaigns")).status_code

    assert campaign["team_id"] == "t1"
    assert preview["audience"] == 1  # the team's customers only
    assert [s["msisdn"] for s in preview["samples"]] == [T1_CUSTOMER]
    assert cid not in listed and other_team_reads == 404 and other_team_edits == 404
    assert (colleague_reads, colleague_edits) == (200, 403)
    assert other_supervisor == 404
    assert approved.status_code == 200, approved.text
    assert self_approval.status_code == 403 and "自己" in self_approval.json()["message"]
    assert partner_lists == 403


async def test_a_company_wide_campaign_shows_each_team_only_its_own_customers(
    app_client: AppClient, seed_customers: SeedCustomers, start_campaign: Any
) -> None:
    await two_teams(seed_customers)
    app = create_app()
    async with app_client(app, role="operator", user="op1") as operator:
        body = {"name": "台风预警", "template": "台风来袭，请注意安全", "regions": ["广东"]}
        alert = await operator.post("/alerts", json=body)
    cid = alert.json()["id"]
    async with app_client(app, **staff("manager", "m2", "t2")) as m2:
        seen_by_t2 = [r["msisdn"] for r in (await m2.get(f"/campaigns/{cid}/recipients")).json()]
    async with app_client(app, role="operator", user="op1") as operator:
        seen_by_operator = [
            r["msisdn"] for r in (await operator.get(f"/campaigns/{cid}/recipients")).json()
        ]
    assert alert.json()["team_id"] is None
    assert seen_by_t2 == [T2_CUSTOMER]
    assert sorted(seen_by_operator) == [T1_CUSTOMER, T2_CUSTOMER]


async def test_tasks_are_scoped_to_the_callers_team(
    app_client: AppClient, seed_customers: SeedCustomers, resources: Resources
) -> None:
    await two_teams(seed_customers)
    async with resources.session() as session:
        for msisdn, manager in ((T1_CUSTOMER, "m1"), (T2_CUSTOMER, "m2")):
            await repository.add_task(
                session, msisdn=msisdn, manager_id=manager, kind="monthly_call",
                period="2099-01", due_on=clock.today(), note="月度电话回访",
            )  # fmt: skip
    app = create_app()
    async with app_client(app, role="operator", user="op1") as operator:
        every = {t["msisdn"]: t["id"] for t in (await operator.get("/tasks")).json()}
    async with app_client(app, **staff("supervisor", "s2", "t2")) as s2:
        tasks = [t["msisdn"] for t in (await s2.get("/tasks")).json()]
        other_team = await s2.post(
            f"/tasks/{every[T1_CUSTOMER]}/complete", json={"outcome": "reached"}
        )
        own_team = await s2.post(
            f"/tasks/{every[T2_CUSTOMER]}/complete", json={"outcome": "reached"}
        )
    assert sorted(every) == [T1_CUSTOMER, T2_CUSTOMER]
    assert tasks == [T2_CUSTOMER]
    assert (other_team.status_code, own_team.status_code) == (404, 200)
