"""VIP base snapshots (拍照) and the retention rate (保有率), through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock
from services.kit.app import Resources
from services.kit.clock import BEIJING
from services.kit.config import Settings
from services.profile.jobs import take_vip_snapshot
from services.profile.worker import WorkerSettings
from tests.profile.conftest import customer

TODAY = clock.today  # called in each test: a run may cross Beijing midnight


async def _backdate_customers(engine: AsyncEngine, days: int) -> None:
    """Customers on file for ``days`` already: the API can only create them now."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE profile.customer SET created_at = created_at - make_interval(days => :d)"),
            {"d": days},
        )


async def _patch(client: Any, msisdn: str, **fields: Any) -> None:
    current = (await client.get(f"/customers/{msisdn}")).json()
    changed = await client.patch(
        f"/customers/{msisdn}", json={**fields, "version": current["version"]}
    )
    assert changed.status_code == 200, changed.text


async def test_a_snapshot_records_the_vip_base_once(profile, teams) -> None:
    today = TODAY()
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", tier="gold"))
        await client.post("/customers", json=customer("13800000002", tier="diamond"))
        await client.post("/customers", json=customer("13800000003", tier="none"))
        first = await client.post(f"/snapshots/{today}")
        await client.post("/customers", json=customer("13800000004", tier="silver"))
        again = await client.post(f"/snapshots/{today}")
        ahead = await client.post(f"/snapshots/{today + timedelta(days=1)}")
        listed = (await client.get("/snapshots")).json()

    assert first.status_code == 201
    assert (first.json()["day"], first.json()["customers"], first.json()["created"]) == (
        str(today),
        2,
        True,
    )
    # Retaking leaves the first snapshot as it was, new VIP or not.
    assert again.status_code == 200
    assert (again.json()["customers"], again.json()["created"]) == (2, False)
    assert again.json()["taken_at"] == first.json()["taken_at"]
    assert (ahead.status_code, ahead.json()["field"]) == (422, "day")
    assert [(s["day"], s["customers"]) for s in listed] == [(str(today), 2)]


async def test_only_admins_and_supervisors_take_snapshots(profile, teams) -> None:
    today = TODAY()
    async with profile(role="manager", user="M1", team="T1") as client:
        manager = await client.post(f"/snapshots/{today}")
    async with profile(role="operator") as client:
        operator = await client.post(f"/snapshots/{today}")
    async with profile(role="supervisor", user="S1", team="T1") as client:
        supervisor = await client.post(f"/snapshots/{today}")
    assert (manager.status_code, operator.status_code, supervisor.status_code) == (403, 403, 201)


async def test_the_monthly_job_takes_the_snapshot_and_a_rerun_changes_nothing(
    profile, teams, engine: AsyncEngine, settings: Settings
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", tier="gold"))
    resources = Resources.open("profile", settings)
    try:
        first = await take_vip_snapshot({"resources": resources})
        second = await take_vip_snapshot({"resources": resources})
    finally:
        await resources.close()
    assert (first["day"], first["customers"], first["created"]) == (str(TODAY()), 1, True)
    assert second["created"] is False
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT msisdn, tier, team_id, manager_id, status "
                    "FROM profile.snapshot_customer"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("13800000001", "gold", "T1", "M1", "active")]


def test_the_job_runs_on_the_first_of_the_month_just_after_midnight_in_beijing() -> None:
    assert WorkerSettings.timezone == BEIJING  # type: ignore[attr-defined]
    jobs = {job.name: job for job in WorkerSettings.cron_jobs}  # type: ignore[attr-defined]
    snapshot = jobs["cron:take_vip_snapshot"]
    assert (snapshot.day, snapshot.hour, snapshot.minute) == (1, {0, 1, 2}, 5)
    recompute = jobs["cron:recompute_tiers"]  # unchanged: 03:30 Beijing on the 2nd-5th
    assert (recompute.day, recompute.hour, recompute.minute) == ({2, 3, 4, 5}, 3, 30)


async def _retention_world(profile: Any, engine: AsyncEngine) -> tuple[Any, Any]:
    """A base snapshot 31 days ago of four VIPs (T1: M1 x2, M2 x1; T2: M3 x1), then one
    churned, one downgraded, one moved between VIP tiers, and a new VIP after the base."""
    today = TODAY()
    base_day = today - timedelta(days=31)
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", tier="gold"))
        await client.post("/customers", json=customer("13800000002", tier="gold"))
        await client.post(
            "/customers", json=customer("13800000003", tier="silver", manager_id="M2")
        )
        await client.post(
            "/customers", json=customer("13800000004", tier="diamond", manager_id="M3")
        )
        await client.post("/customers", json=customer("13800000005", tier="none"))
        await _backdate_customers(engine, 60)
        base = await client.post(f"/snapshots/{base_day}")
        assert base.json()["customers"] == 4
        await client.post("/customers", json=customer("13800000006", tier="gold"))
        await _patch(client, "13800000002", status="churned", churn_reason="转网")
        await _patch(client, "13800000003", tier="none")
        await _patch(client, "13800000004", tier="gold")
    return base_day, today


def _rows(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "total": (report["base"], report["retained"], report["lost"], report["rate"]),
        "teams": [(t["team_id"], t["base"], t["retained"], t["rate"]) for t in report["teams"]],
        "managers": [
            (m["team_id"], m["manager_id"], m["base"], m["retained"]) for m in report["managers"]
        ],
    }


async def test_retention_counts_churned_and_downgraded_customers_as_lost(
    profile, teams, engine: AsyncEngine
) -> None:
    base_day, today = await _retention_world(profile, engine)
    tomorrow = today + timedelta(days=1)
    async with profile() as client:
        live = await client.get(
            "/reports/retention", params={"from": str(base_day), "to": str(tomorrow)}
        )
        # `from` without a snapshot of its own: the latest one before it is the base.
        later_from = await client.get(
            "/reports/retention",
            params={"from": str(base_day + timedelta(days=5)), "to": str(tomorrow)},
        )
        taken = await client.post(f"/snapshots/{today}")
        measured = await client.get(
            "/reports/retention", params={"from": str(base_day), "to": str(today)}
        )

    assert live.status_code == 200, live.text
    report = live.json()
    assert (report["base_snapshot"], report["measured_at"]) == (str(base_day), "live")
    expected = {
        "total": (4, 2, 2, 0.5),
        "teams": [("T1", 3, 1, 0.3333), ("T2", 1, 1, 1.0)],
        "managers": [("T1", "M1", 2, 1), ("T1", "M2", 1, 0), ("T2", "M3", 1, 1)],
    }
    assert _rows(report) == expected
    assert later_from.json()["base_snapshot"] == str(base_day)
    assert _rows(later_from.json()) == expected
    # The snapshot of `to` (the churned customer in it as churned) gives the same answer.
    assert taken.json()["customers"] == 4  # 1, 2 (churned today), 4, and the new 6
    assert measured.json()["measured_at"] == "snapshot"
    assert _rows(measured.json()) == expected


async def test_retention_needs_snapshots_and_says_which_is_missing(
    profile, teams, engine: AsyncEngine
) -> None:
    base_day, today = await _retention_world(profile, engine)
    async with profile() as client:
        no_base = await client.get(
            "/reports/retention",
            params={"from": str(base_day - timedelta(days=1)), "to": str(today)},
        )
        past_to = await client.get(
            "/reports/retention",
            params={"from": str(base_day), "to": str(today - timedelta(days=3))},
        )
        backwards = await client.get(
            "/reports/retention", params={"from": str(base_day), "to": str(base_day)}
        )
        openapi = (await client.get("/openapi.json")).json()
    assert (no_base.status_code, no_base.json()["code"], no_base.json()["field"]) == (
        422,
        "snapshot_missing",
        "from",
    )
    assert "拍照" in no_base.json()["message"]
    assert (past_to.status_code, past_to.json()["field"]) == (422, "to")
    assert (backwards.status_code, backwards.json()["field"]) == (422, "to")
    description = openapi["paths"]["/reports/retention"]["get"]["description"]
    assert "active VIPs" in description and "churned" in description


async def test_retention_is_scoped_to_the_callers_team(profile, teams, engine: AsyncEngine) -> None:
    base_day, today = await _retention_world(profile, engine)
    params = {"from": str(base_day), "to": str(today + timedelta(days=1))}
    async with profile(role="manager", user="M1", team="T1") as client:
        manager = (
            await client.get("/reports/retention", params={**params, "team_id": "T2"})
        ).json()
    async with profile(role="supervisor", user="S2", team="T2") as client:
        supervisor = (await client.get("/reports/retention", params=params)).json()
    async with profile(role="operator") as client:
        operator_all = (await client.get("/reports/retention", params=params)).json()
        operator_t2 = (
            await client.get("/reports/retention", params={**params, "team_id": "T2"})
        ).json()
    async with profile(role="partner", user="P1") as client:
        partner = await client.get("/reports/retention", params=params)

    assert (manager["team_id"], [t["team_id"] for t in manager["teams"]]) == ("T1", ["T1"])
    assert [m["manager_id"] for m in manager["managers"]] == ["M1", "M2"]
    assert (manager["base"], manager["retained"]) == (3, 1)
    assert [t["team_id"] for t in supervisor["teams"]] == ["T2"]
    assert [t["team_id"] for t in operator_all["teams"]] == ["T1", "T2"]
    assert (operator_t2["base"], [t["team_id"] for t in operator_t2["teams"]]) == (1, ["T2"])
    assert partner.status_code == 403
