"""Bulk import, the monthly tier recompute, the contact log and the reach rate."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock
from services.kit.db import create_sessionmaker
from services.kit.events import Envelope
from services.profile.consumers import consumer
from services.profile.contract import CustomerSnapshot
from tests.profile.conftest import customer

pytestmark = pytest.mark.usefixtures("teams")

MIXED = (
    "msisdn,name,gender,region,city,join_date,plan_name,plan_fee,tier,manager_id,taboos\n"
    "13800000001,王建国,male,广东,广州,2012-03-01,全球通199,199.00,gold,M1,忌讳数字4\n"
    "12345,李娜,female,广东,广州,2015-01-01,全球通99,99.00,silver,M1,\n"
    "13800000002,李娜,female,广东,广州,2015-01-01,全球通99,99.00,platinum,M1,\n"
    "13800000003,张伟,male,广东,广州,2015-02-30,全球通99,99.00,silver,M2,\n"
    "13800000004,赵敏,female,新疆,乌鲁木齐,2018-06-01,全球通299,299.00,diamond,M3,\n"
    "13800000005,钱进,male,广东,广州,2018-06-01,全球通299,299.00,none,NOBODY,\n"
)


async def test_import_keeps_good_rows_reports_bad_ones_and_is_idempotent(
    profile, engine: AsyncEngine
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000009", name="原有客户"))
        r = await client.post(
            "/customers/import", content=MIXED.encode(), headers={"content-type": "text/csv"}
        )
        assert r.status_code == 200, r.text
        summary = r.json()
        assert (summary["rows"], summary["inserted"], summary["rejected"]) == (6, 2, 4)
        assert [(e["line"], e["column"]) for e in summary["errors"]] == [
            (3, "msisdn"),
            (4, "tier"),
            (5, "join_date"),
            (7, "manager_id"),
        ]
        numbers = [c["msisdn"] for c in (await client.get("/customers")).json()["items"]]
        assert numbers == ["13800000009", "13800000001", "13800000004"]
        xj = (await client.get("/customers/13800000004")).json()
        assert xj["time_zone"] == "Asia/Urumqi"
        again = (
            await client.post(
                "/customers/import", content=MIXED.encode(), headers={"content-type": "text/csv"}
            )
        ).json()
        assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
        partial = (
            await client.post(
                "/customers/import",
                content=b'{"msisdn": "13800000001", "tier": "diamond"}\n',
                headers={"content-type": "application/x-ndjson"},
            )
        ).json()
        assert partial["updated"] == 1
        one = (await client.get("/customers/13800000001")).json()
        assert (one["tier"], one["taboos"], one["version"]) == ("diamond", ["忌讳数字4"], 2)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT type, payload FROM profile.outbox ORDER BY seq"))
        ).all()
    assert [r.type for r in rows] == [
        "customer.created",
        "customer.created",
        "customer.created",
        "customer.updated",
        "customer.tier_changed",
    ]
    for row in rows:
        CustomerSnapshot.model_validate(row.payload["customer"])
    assert rows[1].payload["customer"]["team_id"] == "T1"
    assert rows[3].payload["changed"] == ["tier"]


async def test_monthly_recompute_sets_tiers_records_reasons_and_publishes(
    profile, engine: AsyncEngine
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", tier="silver"))
        await client.post("/customers", json=customer("13800000002", tier="gold"))
        bills = [
            {"msisdn": "13800000001", "month": m, "spend": s}
            for m, s in (("2026-08", "480"), ("2026-09", "520"), ("2026-10", "600"))
        ] + [{"msisdn": "13800000002", "month": "2026-10", "spend": "320"}]
        loaded = await client.put("/billing", json=bills)
        assert loaded.json() == {"loaded": 4, "unknown_customers": 0}
        early = (await client.post("/tiers/recompute", params={"month": "2026-12"})).json()
        assert early["skipped_reason"] == "no billing loaded for 2026-11"
        run = (await client.post("/tiers/recompute", params={"month": "2026-11"})).json()
        assert (run["evaluated"], run["tier_changes"]) == (2, 2)
        one = (await client.get("/customers/13800000001")).json()
        assert (one["tier"], one["value_quadrant"], one["rfm_monetary"]) == (
            "diamond",
            "star",
            5,
        )
        two = (await client.get("/customers/13800000002")).json()
        assert two["tier"] == "none"  # one month of spend is not enough for a tier
        rerun = (await client.post("/tiers/recompute", params={"month": "2026-11"})).json()
        assert rerun["tier_changes"] == 0
    async with engine.connect() as conn:
        reasons = (
            await conn.execute(
                text(
                    "SELECT t.new_tier, t.reason FROM profile.tier_change t "
                    "JOIN profile.customer c ON c.id = t.customer_id ORDER BY c.msisdn, t.id"
                )
            )
        ).all()
        events = (
            await conn.execute(
                text("SELECT count(*) FROM profile.outbox WHERE type = 'customer.tier_changed'")
            )
        ).scalar()
    assert reasons[0].new_tier == "diamond"
    assert "月均消费 533.33 元" in reasons[0].reason
    assert events == 2


async def test_contacts_from_other_services_and_the_reach_rate(
    profile, engine: AsyncEngine
) -> None:
    today = clock.today()
    called_at = f"{today - timedelta(days=10)}T10:00:00+08:00"
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001"))
        await client.post("/customers", json=customer("13800000002", manager_id="M2"))
        await client.post("/customers", json=customer("13800000003", manager_id="M2"))
        call = await client.post(
            "/customers/13800000001/contacts",
            json={"channel": "call", "outcome": "reached", "note": "生日问候",
                  "at": called_at, "source_ref": "c1"},
        )  # fmt: skip
        assert call.status_code == 201, call.text
        repeat = await client.post(
            "/customers/13800000001/contacts",
            json={"channel": "call", "outcome": "reached", "source_ref": "c1",
                  "at": called_at},
        )  # fmt: skip
        assert repeat.status_code == 200 and repeat.json()["id"] == call.json()["id"]
        bad = await client.post(
            "/customers/13800000001/contacts", json={"channel": "fax", "outcome": "reached"}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "channel"

    envelope = Envelope(
        id=uuid.uuid4(), seq=1, type="care.message_delivered", version=1, producer="care",
        aggregate_id="13800000002", occurred_at=datetime.now(UTC),
        payload={"contact": {"msisdn": "13800000002", "channel": "sms", "direction": "outbound",
                             "at": f"{today - timedelta(days=8)}T02:00:00Z", "by": "care",
                             "outcome": "delivered",
                             "source": "care", "source_ref": "d-1"}},
    )  # fmt: skip
    sessions = create_sessionmaker(engine)
    for _ in range(2):  # redelivery has no second effect
        async with sessions() as session, session.begin():
            results = await consumer.receive(session, [envelope])
    assert results[0].status == "duplicate"

    async with profile() as client:
        log = (await client.get("/customers/13800000002/contacts")).json()["items"]
        assert [(e["channel"], e["source"]) for e in log] == [("sms", "care")]
        report = (
            await client.get(
                "/reports/reach",
                params={
                    "from": str(today - timedelta(days=30)),
                    "to": str(today + timedelta(days=1)),
                },
            )
        ).json()
        assert [(g["group"], g["customers"], g["reached"]) for g in report["groups"]] == [
            ("M1", 1, 1),
            ("M2", 2, 1),
        ]
        assert report["total"]["rate"] == pytest.approx(2 / 3, abs=1e-4)
        by_team = (
            await client.get(
                "/reports/reach",
                params={
                    "from": str(today + timedelta(days=1)),
                    "to": str(today + timedelta(days=31)),
                    "group_by": "team",
                },
            )
        ).json()
        assert [(g["group"], g["reached"]) for g in by_team["groups"]] == [("T1", 0)]


async def test_a_partner_import_sets_only_partner_fields_and_no_import_clears_an_opt_out(
    profile,
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", sms_opt_out=True))
        await client.post("/customers", json=customer("13800000002"))
    feed = (
        '{"msisdn": "13800000001", "plan_name": "全球通299", "sms_opt_out": false}\n'
        '{"msisdn": "13800000002", "plan_name": "全球通299", "tier": "diamond"}\n'
    )
    async with profile(role="partner", user="partner-crm") as partner:
        answer = await partner.post(
            "/customers/import",
            content=feed.encode(),
            headers={"content-type": "application/x-ndjson"},
        )
    async with profile(role="operator") as client:
        operator_feed = "msisdn,sms_opt_out\n13800000001,false\n"
        await client.post(
            "/customers/import",
            content=operator_feed.encode(),
            headers={"content-type": "text/csv"},
        )
        one = (await client.get("/customers/13800000001")).json()
        two = (await client.get("/customers/13800000002")).json()
    summary = answer.json()
    assert (summary["updated"], summary["rejected"]) == (1, 1)
    assert (summary["errors"][0]["line"], summary["errors"][0]["column"]) == (2, "tier")
    assert (one["plan_name"], one["sms_opt_out"]) == ("全球通299", True)
    assert one["sms_opt_out_at"] is not None
    assert (two["plan_name"], two["tier"]) == ("全球通尊享199", "gold")


async def test_an_import_racing_a_patch_keeps_what_the_patch_wrote(
    profile, engine: AsyncEngine, settings
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", name="王建国"))
    patch = await engine.connect()
    writing = await patch.begin()
    # The PATCH has changed the name and holds the row, not yet committed.
    await patch.execute(
        text("UPDATE profile.customer SET name = '王建华', version = version + 1 "
             "WHERE msisdn = '13800000001'")
    )  # fmt: skip

    async def run_import() -> Any:
        feed = "msisdn,plan_fee\n13800000001,299.00\n"
        async with profile(role="operator") as client:
            return await client.post(
                "/customers/import", content=feed.encode(), headers={"content-type": "text/csv"}
            )

    importing = asyncio.create_task(run_import())
    async with engine.connect() as probe:
        for _ in range(200):
            waiting = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FOR UPDATE OF c%'"
                )
            )
            if waiting or importing.done():
                break
            await asyncio.sleep(0.05)
    await writing.commit()
    await patch.close()
    assert (await importing).status_code == 200
    async with profile() as client:
        after = (await client.get("/customers/13800000001")).json()
    assert (after["name"], after["plan_fee"], after["version"]) == ("王建华", "299.00", 3)


async def test_the_reach_rate_counts_vip_customers_by_beijing_day(
    profile, engine: AsyncEngine
) -> None:
    day = clock.today() - timedelta(days=3)
    # 00:30 in Beijing is still the previous day in UTC: it counts on its Beijing day.
    early = f"{day}T00:30:00+08:00"
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001"))
        await client.post("/customers", json=customer("13800000002", tier="none"))
        async with engine.begin() as conn:  # on file for a while
            await conn.execute(
                text("UPDATE profile.customer SET created_at = now() - interval '9 days'")
            )
        for msisdn in ("13800000001", "13800000002"):
            added = await client.post(
                f"/customers/{msisdn}/contacts",
                json={"channel": "call", "outcome": "reached", "at": early},
            )
            assert added.status_code == 201, added.text

        async def reach(first: date, after_last: date) -> list[tuple[str, int, int]]:
            report = await client.get(
                "/reports/reach", params={"from": str(first), "to": str(after_last)}
            )
            return [(g["group"], g["customers"], g["reached"]) for g in report.json()["groups"]]

        that_day = await reach(day, day + timedelta(days=1))
        day_before = await reach(day - timedelta(days=1), day)
        openapi = (await client.get("/openapi.json")).json()

    assert that_day == [("M1", 1, 1)]  # the non-member is not a VIP customer
    assert day_before == [("M1", 1, 0)]
    assert "VIP customers" in openapi["paths"]["/reports/reach"]["get"]["description"]
