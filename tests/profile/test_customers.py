"""The customer archive over the API: validation, optimistic concurrency, filters, access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock
from tests.profile.conftest import customer

pytestmark = pytest.mark.usefixtures("teams")


async def test_a_number_in_any_usual_form_is_stored_normalised(profile) -> None:
    async with profile() as client:
        created = await client.post("/customers", json=customer(msisdn="+86 138-1234-5678"))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["msisdn"] == "13812345678"
        assert body["honorific"] == "王先生"
        assert body["time_zone"] == "Asia/Shanghai"
        assert created.headers["etag"] == '"1"'
        again = await client.post("/customers", json=customer(msisdn="13812345678"))
        assert again.status_code == 409
        assert again.json()["field"] == "msisdn"


async def test_dates_are_judged_by_the_calendar_in_beijing(profile) -> None:
    """Servers run on UTC, a day behind Beijing from 16:00 UTC: a subscriber who joined
    today in Beijing must be accepted then, and tomorrow never."""
    in_beijing = clock.today()
    async with profile() as client:
        joined = await client.post(
            "/customers", json=customer(msisdn="13812340001", join_date=in_beijing.isoformat())
        )
        ahead = await client.post(
            "/customers",
            json=customer(
                msisdn="13812340002", join_date=(in_beijing + timedelta(days=1)).isoformat()
            ),
        )
    assert joined.status_code == 201, joined.text
    assert ahead.status_code == 422 and ahead.json()["field"] == "join_date"


async def test_time_zone_follows_the_region_unless_set(profile) -> None:
    async with profile() as client:
        xj = await client.post(
            "/customers", json=customer(msisdn="13912345678", region="新疆维吾尔自治区")
        )
        assert xj.json()["region"] == "新疆"
        assert xj.json()["time_zone"] == "Asia/Urumqi"
        own = await client.post(
            "/customers", json=customer(msisdn="13912345679", time_zone="Asia/Shanghai",
                                        region="新疆")
        )  # fmt: skip
        assert own.json()["time_zone"] == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"msisdn": "12812345678"}, "msisdn"),
        ({"msisdn": "1381234567"}, "msisdn"),
        ({"name": "  "}, "name"),
        ({"gender": "x"}, "gender"),
        ({"birthday": "2999-01-01"}, "birthday"),
        ({"birthday": "1975-13-01"}, "birthday"),
        ({"region": "火星"}, "region"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"join_date": "yesterday"}, "join_date"),
        ({"plan_fee": "-1"}, "plan_fee"),
        ({"plan_fee": "1.234"}, "plan_fee"),
        ({"tier": "platinum"}, "tier"),
        ({"service_level": "D"}, "service_level"),
        ({"lifecycle": "dead"}, "lifecycle"),
        ({"status": "gone"}, "status"),
        ({"contact_channels": ["pigeon"]}, "contact_channels.0"),
        ({"preferred_hours_start": 25}, "preferred_hours_start"),
        ({"important_dates": [{"label": "结婚纪念日", "date": "x"}]}, "important_dates.0.date"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"name": None}, "name"),
    ],
)
async def test_invalid_input_is_refused_naming_the_field(profile, change, field) -> None:
    async with profile() as client:
        response = await client.post("/customers", json=customer() | change)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
        assert (await client.get("/customers")).json()["items"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"preferred_hours_start": 20, "preferred_hours_end": 8}, "preferred_hours_end"),
        ({"status": "churned"}, "churn_reason"),
        ({"manager_id": "NOBODY"}, "manager_id"),
        ({"custom": {"shoe_size": 42}}, "custom.shoe_size"),
    ],
)
async def test_rules_between_fields_name_the_field(profile, change, field) -> None:
    async with profile() as client:
        response = await client.post("/customers", json=customer() | change)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field


async def test_a_stale_write_gets_409_and_changes_nothing(profile) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer())
        first = await client.patch(
            "/customers/13812345678", json={"taboos": ["不喜欢电话推销"]},
            headers={"If-Match": '"1"'},
        )  # fmt: skip
        assert first.status_code == 200, first.text
        assert first.headers["etag"] == '"2"'
        stale = await client.patch("/customers/13812345678", json={"name": "王建华", "version": 1})
        assert stale.status_code == 409
        assert stale.json()["code"] == "stale_version"
        missing = await client.patch("/customers/13812345678", json={"name": "王建华"})
        assert missing.status_code == 428
        now = (await client.get("/customers/13812345678")).json()
        assert now["name"] == "王建国"
        assert now["taboos"] == ["不喜欢电话推销"]
        assert now["version"] == 2


async def test_patch_is_partial_validated_and_publishes_what_changed(
    profile, engine: AsyncEngine
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer())
        bad = await client.patch("/customers/13812345678", json={"tier": "x", "version": 1})
        assert bad.status_code == 422 and bad.json()["field"] == "tier"
        ok = await client.patch(
            "/customers/13812345678",
            json={"version": 1, "manager_id": "M2", "sms_opt_out": True, "tier": "diamond"},
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["plan_name"] == "全球通尊享199"
        assert body["sms_opt_out_at"] is not None
        history = (await client.get("/customers/13812345678/managers")).json()
        assert [(h["manager_id"], h["ended_at"] is None) for h in history] == [
            ("M1", False),
            ("M2", True),
        ]
        churn = await client.patch(
            "/customers/13812345678",
            json={"version": 2, "status": "churned", "churn_reason": "携号转网"},
        )
        assert churn.json()["lifecycle"] == "churn"
        assert churn.json()["churned_on"] is not None
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT type, payload FROM profile.outbox ORDER BY seq"))
        ).all()
    types = [r.type for r in rows]
    assert types == [
        "customer.created",
        "customer.updated",
        "customer.manager_reassigned",
        "customer.tier_changed",
        "customer.updated",
        "customer.churned",
    ]
    assert rows[1].payload["changed"] == ["manager_id", "sms_opt_out", "sms_opt_out_at", "tier"]
    assert rows[2].payload["customer"]["manager_id"] == "M2"
    assert rows[5].payload["reason"] == "携号转网"


async def test_filters(profile) -> None:
    async with profile() as client:
        await client.post(
            "/customers",
            json=customer(
                "13800000001", name="李娜", gender="female", birthday="1980-03-02", tier="diamond"
            ),
        )
        await client.post(
            "/customers",
            json=customer("13800000002", name="张伟", manager_id="M2", service_level="B"),
        )
        await client.post(
            "/customers",
            json=customer(
                "13800000003",
                name="李强",
                region="新疆",
                city="乌鲁木齐",
                manager_id="M3",
                lifecycle="decline",
            ),
        )

        async def numbers(**params: object) -> list[str]:
            response = await client.get("/customers", params=params)
            assert response.status_code == 200, response.text
            return [c["msisdn"][-1] for c in response.json()["items"]]

        assert await numbers() == ["1", "2", "3"]
        assert await numbers(manager_id="M2") == ["2"]
        assert await numbers(team_id="T1") == ["1", "2"]
        assert await numbers(tier="diamond") == ["1"]
        assert await numbers(service_level="B") == ["2"]
        assert await numbers(lifecycle="decline") == ["3"]
        assert await numbers(region="新疆") == ["3"]
        assert await numbers(status="active") == ["1", "2", "3"]
        assert await numbers(birthday_month=3) == ["1"]
        assert await numbers(q="李") == ["1", "3"]
        assert await numbers(msisdn="+86 138 0000 0002") == ["2"]
        bad = await client.get("/customers", params={"birthday_month": 13})
        assert bad.status_code == 422 and bad.json()["field"] == "birthday_month"


async def test_pages_stay_stable_while_customers_are_added(profile) -> None:
    async with profile() as client:
        for i in range(7):
            await client.post("/customers", json=customer(f"1380000001{i}"))
        seen: list[str] = []
        cursor = None
        added = 0
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/customers", params=params)).json()
            seen += [c["msisdn"] for c in page["items"]]
            # Someone inserts while we page through.
            await client.post("/customers", json=customer(f"1390000002{added}"))
            added += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        assert seen[:7] == [f"1380000001{i}" for i in range(7)]


async def test_who_sees_and_changes_what(profile) -> None:
    async with profile() as admin:
        await admin.post("/customers", json=customer("13800000001"))
        await admin.post(
            "/customers",
            json=customer("13800000003", manager_id="M3", region="新疆", city="乌鲁木齐"),
        )
    async with profile(role="manager", user="M2", team="T1") as colleague:
        listed = (await colleague.get("/customers")).json()["items"]
        assert [c["msisdn"] for c in listed] == ["13800000001"]
        refused = await colleague.patch("/customers/13800000001", json={"name": "x", "version": 1})
        assert refused.status_code == 403
        assert (await colleague.get("/customers/13800000003")).status_code == 404
    async with profile(role="manager", user="M1", team="T1") as own:
        ok = await own.patch(
            "/customers/13800000001", json={"family_notes": "女儿在读大学", "version": 1}
        )
        assert ok.status_code == 200
        no = await own.patch("/customers/13800000001", json={"manager_id": "M2", "version": 2})
        assert no.status_code == 403
    async with profile(role="partner", user="app", scopes=["customers:read"]) as partner:
        shown = (await partner.get("/customers/13800000001")).json()
        assert shown["msisdn"] == "138****0001"
        refused = await partner.patch("/customers/13800000001", json={"name": "x", "version": 2})
        assert refused.status_code == 403


async def test_a_departing_manager_hands_over_and_the_archive_stays(profile) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", family_notes="喜欢钓鱼"))
        left = await client.post("/managers/M1/leave", json={"reassign_to": "M2"})
        assert left.status_code == 200, left.text
        assert left.json()["customers_moved"] == 1
        after = (await client.get("/customers/13800000001")).json()
        assert after["manager_id"] == "M2"
        assert after["family_notes"] == "喜欢钓鱼"
        history = (await client.get("/customers/13800000001/managers")).json()
        assert [h["manager_id"] for h in history] == ["M1", "M2"]
        gone = (await client.get("/managers/M1")).json()
        assert gone["active"] is False and gone["left_on"] is not None
        refused = await client.patch(
            "/customers/13800000001", json={"manager_id": "M1", "version": after["version"]}
        )
        assert refused.status_code == 422 and refused.json()["field"] == "manager_id"


async def test_partners_see_managers_phone_numbers_masked(profile) -> None:
    async with profile(role="partner", user="crm-x", scopes=["customers:read"]) as partner:
        listed = (await partner.get("/managers")).json()
        one = (await partner.get("/managers/M1")).json()
    async with profile(role="supervisor", user="S1", team="T1") as supervisor:
        staff = (await supervisor.get("/managers/M1")).json()
    assert {m["phone"] for m in listed} == {"139****0001", "139****0002", "139****0003"}
    assert (one["phone"], staff["phone"]) == ("139****0001", "13900000001")


async def test_a_customer_posted_again_with_its_idempotency_key_is_created_once(
    profile, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "crm-7f3e2a"}
    async with profile() as client:
        first = await client.post("/customers", json=customer(), headers=headers)
        again = await client.post("/customers", json=customer(), headers=headers)
        unkeyed = await client.post("/customers", json=customer())
    assert first.status_code == again.status_code == 201, first.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (again.headers["etag"], again.headers["location"]) == (
        first.headers["etag"],
        first.headers["location"],
    )
    assert unkeyed.status_code == 409  # without the key the same POST is a conflict
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM profile.customer")) == 1
        created = "SELECT count(*) FROM profile.outbox WHERE type = 'customer.created'"
        assert await conn.scalar(text(created)) == 1
