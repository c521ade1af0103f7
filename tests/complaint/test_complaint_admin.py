"""Admin data through the API: categories, SLA policies, calendars (provisional years, an
official schedule loaded), escalation contacts, alerts and reports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from complaint_support import Api, complaint_body

from services.kit import clock


async def test_categories_are_data_an_admin_edits(api: Api) -> None:
    async with api("admin", user="admin-1") as admin:
        r = await admin.post("/categories", json={"code": "roaming", "name": "国际漫游"})
        assert r.status_code == 201
        assert (await admin.post("/categories", json={"code": "roaming", "name": "x"})).json()[
            "field"
        ] == "code"
        created = await admin.post("/complaints", json=complaint_body(category="roaming"))
        assert created.status_code == 201
        off = await admin.patch("/categories/roaming", json={"active": False})
        assert off.status_code == 200 and not off.json()["active"]
        refused = await admin.post("/complaints", json=complaint_body(category="roaming"))
        assert refused.status_code == 422 and refused.json()["field"] == "category"
    async with api("manager", user="m1", team="t1") as manager:
        codes = [c["code"] for c in (await manager.get("/categories")).json()]
        assert "network_signal" in codes and "roaming" not in codes
        assert (
            await manager.post("/categories", json={"code": "zz", "name": "z"})
        ).status_code == 403


async def test_calendars_say_which_years_are_provisional_until_loaded(api: Api) -> None:
    year = clock.today().year
    async with api("admin", user="admin-1") as admin:
        (calendar,) = (await admin.get("/calendars")).json()
        assert calendar["hours"] == [["08:30", "12:00"], ["13:30", "18:00"]]
        provisional = set(calendar["provisional_years"])
        assert 2027 in provisional or year > 2027
        target = max(provisional)
        body = {"days_off": [f"{target}-01-01"], "workdays": []}
        r = await admin.put(f"/calendars/{calendar['id']}/years/{target}", json=body)
        assert r.status_code == 200, r.text
        assert target not in r.json()["calendar"]["provisional_years"]
        bad = await admin.put(
            f"/calendars/{calendar['id']}/years/{target}",
            json={"days_off": [f"{target + 1}-01-01"]},
        )
        assert bad.status_code == 422 and bad.json()["field"] == "days_off.0"
        weekday = await admin.patch(
            f"/calendars/{calendar['id']}", json={"hours": [["18:00", "09:00"]]}
        )
        assert weekday.status_code == 422 and weekday.json()["field"] == "hours"
    async with api("manager", user="m1", team="t1") as manager:
        r = await manager.put(f"/calendars/{calendar['id']}/years/{target}", json=body)
        assert r.status_code == 403


async def test_policies_are_listed_in_order_and_validated(api: Api) -> None:
    async with api("admin", user="admin-1") as admin:
        policies = (await admin.get("/sla/policies")).json()
        assert [p["position"] for p in policies] == sorted(p["position"] for p in policies)
        assert policies[0]["conditions"] == {"channel": ["regulator"]}
        bad = await admin.post(
            "/sla/policies",
            json={"name": "x", "position": 1, "targets": {"first_response": {"minutes": 0}}},
        )
        assert bad.status_code == 422 and bad.json()["field"] == "targets.first_response.minutes"
        unknown = await admin.put(
            "/sla/policies/999",
            json={"name": "x", "position": 1, "targets": {"resolution": {"minutes": 60}}},
        )
        assert unknown.status_code == 404


async def test_reports_and_alerts(api: Api) -> None:
    async with api("admin", user="admin-1") as admin:
        await admin.put(
            "/escalation-contacts/t1", json={"supervisor_id": "sup-1", "escalation_manager_id": "b"}
        )
        ticket: dict[str, Any] = (await admin.post("/complaints", json=complaint_body())).json()
        again = (await admin.post("/complaints", json=complaint_body())).json()
        r = await admin.post(
            f"/complaints/{ticket['id']}/acknowledge", json={"version": 1, "emotion": "安抚"}
        )
        assert r.status_code == 200
        assert (await admin.post("/sla/sweep")).status_code == 200
        assert (await admin.get("/alerts")).status_code == 200
        today = clock.today()
        report = (
            await admin.get(
                "/reports",
                params={"group_by": "category", "start": str(today - timedelta(days=1)),
                        "end": str(today)},
            )
        ).json()  # fmt: skip
        (group,) = report["groups"]
        assert group["group"] == "network_signal" and group["opened"] == 2
        assert group["repeat_rate"] == 0.5
        first = {m["metric"]: m for m in group["metrics"]}["first_response"]
        assert first["stopped"] == 1 and first["met"] == 1 and first["compliance"] == 1.0
        assert again["is_repeat"]
        bad = await admin.get(
            "/reports", params={"start": str(today), "end": str(today - timedelta(days=2))}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "end"
    async with api("manager", user="m1", team="t1") as manager:
        assert (await manager.get("/escalation-contacts")).status_code == 403
        assert (await manager.get("/reports")).status_code == 200
