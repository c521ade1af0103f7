"""Customer tags, and the snapshot other services keep: tags, interests and the manager's
name, the same from the API's writes as from the set-based import, kept current when a
manager is renamed or moves team."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import create_sessionmaker
from services.profile import repository, service
from services.profile.contract import CustomerSnapshot
from tests.profile.conftest import customer

pytestmark = pytest.mark.usefixtures("teams")


def jsonl(*rows: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


async def outbox(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = text("SELECT type, aggregate_id, payload FROM profile.outbox ORDER BY seq")
        return list((await conn.execute(query)).all())


async def test_tags_are_kept_trimmed_shown_changed_and_filtered_on(profile) -> None:
    async with profile() as client:
        created = await client.post(
            "/customers",
            json=customer("13800000001", tags=[" 商旅客户 ", "高端家庭"], interests=["茶艺"]),
        )
        assert created.status_code == 201, created.text
        assert created.json()["tags"] == ["商旅客户", "高端家庭"]
        assert created.json()["manager_name"] == "李娜"
        await client.post("/customers", json=customer("13800000002", tags=["高端家庭"]))
        await client.post("/customers", json=customer("13800000003", manager_id="M2"))

        async def tagged(tag: str) -> list[str]:
            response = await client.get("/customers", params={"tag": tag})
            assert response.status_code == 200, response.text
            return [c["msisdn"] for c in response.json()["items"]]

        assert await tagged("商旅客户") == ["13800000001"]
        assert await tagged(" 高端家庭 ") == ["13800000001", "13800000002"]
        assert await tagged("政企客户") == []

        changed = await client.patch(
            "/customers/13800000001", json={"version": 1, "tags": ["政企客户"]}
        )
        assert changed.status_code == 200, changed.text
        read = (await client.get("/customers/13800000001")).json()
        assert (read["tags"], read["interests"], read["version"]) == (["政企客户"], ["茶艺"], 2)
        assert await tagged("商旅客户") == []
        assert await tagged("政企客户") == ["13800000001"]
        third = (await client.get("/customers/13800000003")).json()
        assert (third["tags"], third["manager_name"]) == ([], "王磊")


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        (["  "], "tags.0"),
        (["商旅客户", ""], "tags.1"),
        (["长" * 51], "tags.0"),
        ([f"标签{i}" for i in range(51)], "tags"),
        ("商旅客户", "tags"),
        ([7], "tags.0"),
        (None, "tags"),
    ],
)
async def test_bad_tags_are_refused_naming_the_field_and_change_nothing(
    profile, engine: AsyncEngine, tags: object, field: str
) -> None:
    async with profile() as client:
        refused = await client.post("/customers", json=customer("13800000001", tags=tags))
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == field
        await client.post("/customers", json=customer("13800000002", tags=["商旅客户"]))
        again = await client.patch("/customers/13800000002", json={"version": 1, "tags": tags})
        assert again.status_code == 422, again.text
        assert again.json()["field"] == field
        kept = (await client.get("/customers/13800000002")).json()
        assert (kept["tags"], kept["version"]) == (["商旅客户"], 1)
        assert [c["msisdn"] for c in (await client.get("/customers")).json()["items"]] == [
            "13800000002"
        ]
    assert [r.type for r in await outbox(engine)] == ["customer.created"]


async def test_the_import_sets_tags_keeps_them_when_not_given_and_refuses_bad_ones(
    profile,
) -> None:
    rows = (
        "msisdn,name,region,city,join_date,plan_name,plan_fee,manager_id,tags,interests\n"
        "13800000001,王建国,广东,广州,2012-03-01,全球通199,199.00,M1,商旅客户| 高端家庭 ,钓鱼\n"
        "13800000002,李娜,广东,广州,2015-01-01,全球通99,99.00,M1,,\n"
        f"13800000003,张伟,广东,广州,2015-01-01,全球通99,99.00,M2,{'长' * 51},\n"
    )
    async with profile() as client:
        summary = (
            await client.post(
                "/customers/import", content=rows.encode(), headers={"content-type": "text/csv"}
            )
        ).json()
        assert (summary["inserted"], summary["rejected"]) == (2, 1)
        assert [(e["line"], e["column"]) for e in summary["errors"]] == [(4, "tags")]
        one = (await client.get("/customers/13800000001")).json()
        assert (one["tags"], one["interests"]) == (["商旅客户", "高端家庭"], ["钓鱼"])
        assert (await client.get("/customers/13800000002")).json()["tags"] == []

        feed = jsonl({"msisdn": "13800000001", "tier": "diamond"},
                     {"msisdn": "13800000002", "tags": ["政企客户"]})  # fmt: skip
        second = (
            await client.post(
                "/customers/import", content=feed, headers={"content-type": "application/x-ndjson"}
            )
        ).json()
        assert second["updated"] == 2
        one = (await client.get("/customers/13800000001")).json()
        assert (one["tier"], one["tags"]) == ("diamond", ["商旅客户", "高端家庭"])
        listed = (await client.get("/customers", params={"tag": "政企客户"})).json()["items"]
        assert [c["msisdn"] for c in listed] == ["13800000002"]


async def test_every_snapshot_carries_tags_interests_and_the_managers_name_alike(
    profile, engine: AsyncEngine
) -> None:
    """The API's writes build the snapshot in Python, the import and the monthly recompute
    in SQL: for the same customer both must say the same."""
    archive = customer(
        "13800000001",
        name="欧阳娜",
        gender="female",
        tags=["商旅客户"],
        interests=["茶艺", "书法"],
        taboos=["忌讳数字4"],
        important_dates=[{"label": "结婚纪念日", "date": "2001-10-01"}],
        contact_channels=["sms", "call"],
        sms_opt_out=True,
        contract_name="合约299",
        contract_end="2027-01-31",
    )
    async with profile() as client:
        assert (await client.post("/customers", json=archive)).status_code == 201
        feed = jsonl(
            {"msisdn": "13800000001", "lifecycle": "growth"},
            {"msisdn": "13800000002", "name": "张伟", "region": "广东", "city": "广州",
             "join_date": "2015-01-01", "plan_name": "全球通99", "plan_fee": "99.00"},
        )  # fmt: skip
        imported = await client.post(
            "/customers/import", content=feed, headers={"content-type": "application/x-ndjson"}
        )
        assert imported.json()["rejected"] == 0, imported.text
    events = await outbox(engine)
    assert [(r.type, r.aggregate_id) for r in events] == [
        ("customer.created", "13800000001"),
        ("customer.created", "13800000002"),
        ("customer.updated", "13800000001"),
    ]
    by_api = CustomerSnapshot.model_validate(events[0].payload["customer"])
    assert (by_api.tags, by_api.interests, by_api.manager_name) == (
        ["商旅客户"],
        ["茶艺", "书法"],
        "李娜",
    )
    unmanaged = CustomerSnapshot.model_validate(events[1].payload["customer"])
    assert (unmanaged.tags, unmanaged.interests, unmanaged.manager_name) == ([], [], None)
    by_import = CustomerSnapshot.model_validate(events[2].payload["customer"])
    async with create_sessionmaker(engine)() as session:
        stored = await repository.get_customer(session, "13800000001")
        assert stored is not None
        manager = await repository.manager_of(session, stored.manager_id)
        expected = service.snapshot_of(stored, manager)
    assert by_import == expected
    assert (by_import.version, by_import.lifecycle, by_import.manager_name) == (2, "growth", "李娜")


async def test_renaming_a_manager_or_moving_their_team_republishes_their_customers(
    profile, engine: AsyncEngine
) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001", manager_id="M1"))
        await client.post("/customers", json=customer("13800000002", manager_id="M1"))
        await client.post("/customers", json=customer("13800000003", manager_id="M2"))
        await client.patch("/customers/13800000002", json={"version": 1, "name": "王建华"})

        phone = await client.patch("/managers/M1", json={"phone": "13900000099"})
        assert phone.status_code == 200, phone.text
        assert len(await outbox(engine)) == 4  # the phone is in no snapshot

        renamed = await client.patch("/managers/M1", json={"name": "周婷"})
        assert renamed.status_code == 200, renamed.text
        read = (await client.get("/customers/13800000002")).json()
        assert (read["manager_name"], read["version"]) == ("周婷", 3)
        untouched = (await client.get("/customers/13800000003")).json()
        assert (untouched["manager_name"], untouched["version"]) == ("王磊", 1)

        moved = await client.patch("/managers/M1", json={"team_id": "T2", "name": "周婷"})
        assert moved.status_code == 200, moved.text

    events = (await outbox(engine))[4:]
    assert [(r.type, r.aggregate_id, r.payload["changed"]) for r in events] == [
        ("customer.updated", "13800000001", ["manager_name"]),
        ("customer.updated", "13800000002", ["manager_name"]),
        ("customer.updated", "13800000001", ["team_id"]),
        ("customer.updated", "13800000002", ["team_id"]),
    ]
    snapshots = [CustomerSnapshot.model_validate(r.payload["customer"]) for r in events]
    assert [(s.version, s.manager_name, s.team_id, s.name) for s in snapshots] == [
        (2, "周婷", "T1", "王建国"),
        (3, "周婷", "T1", "王建华"),
        (3, "周婷", "T2", "王建国"),
        (4, "周婷", "T2", "王建华"),
    ]
