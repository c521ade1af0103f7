"""The batched reads the gateway's loaders make: ``?msisdn=`` / ``?id=`` repeated."""

from __future__ import annotations

import pytest

from tests.profile.conftest import customer

pytestmark = pytest.mark.usefixtures("teams")


def many(name: str, count: int) -> list[tuple[str, str]]:
    return [(name, f"1380000{i:04d}") for i in range(count)]


async def test_customers_by_several_numbers_in_any_form(profile) -> None:
    async with profile() as admin:
        for number, manager in (
            ("13800000001", "M1"),
            ("13800000002", "M2"),
            ("13800000003", "M3"),
        ):
            created = await admin.post("/customers", json=customer(number, manager_id=manager))
            assert created.status_code == 201
        params = [("msisdn", "+86 138-0000-0003"), ("msisdn", "13800000001")]
        params.append(("msisdn", "13899999999"))  # no customer: left out
        page = (await admin.get("/customers", params=params)).json()
        assert [c["msisdn"] for c in page["items"]] == ["13800000001", "13800000003"]
        one = (await admin.get("/customers", params={"msisdn": "138 0000 0002"})).json()
        assert [c["msisdn"] for c in one["items"]] == ["13800000002"]
        combined = [("msisdn", "13800000001"), ("msisdn", "13800000002"), ("manager_id", "M2")]
        page = (await admin.get("/customers", params=combined)).json()
        assert [c["msisdn"] for c in page["items"]] == ["13800000002"]


async def test_batched_customers_keep_the_callers_scope_and_masking(profile) -> None:
    async with profile() as admin:
        for number, manager in (("13800000001", "M1"), ("13800000003", "M3")):
            await admin.post("/customers", json=customer(number, manager_id=manager))
    both = [("msisdn", "13800000001"), ("msisdn", "13800000003")]
    async with profile(role="manager", user="M2", team="T1") as colleague:
        items = (await colleague.get("/customers", params=both)).json()["items"]
        assert [c["msisdn"] for c in items] == ["13800000001"]
    async with profile(role="supervisor", user="S2", team="T2") as other_team:
        items = (await other_team.get("/customers", params=both)).json()["items"]
        assert [c["msisdn"] for c in items] == ["13800000003"]
    async with profile(role="partner", user="P1", scopes=["customers:read"]) as partner:
        items = (await partner.get("/customers", params=both)).json()["items"]
        assert [c["msisdn"] for c in items] == ["138****0001", "138****0003"]


async def test_more_than_a_hundred_numbers_or_a_bad_one_is_refused_naming_the_field(
    profile,
) -> None:
    async with profile() as admin:
        assert (await admin.get("/customers", params=many("msisdn", 100))).status_code == 200
        too_many = await admin.get("/customers", params=many("msisdn", 101))
        assert too_many.status_code == 422 and too_many.json()["field"] == "msisdn"
        bad = await admin.get("/customers", params=[("msisdn", "13800000001"), ("msisdn", "12")])
        assert bad.status_code == 422 and bad.json()["field"] == "msisdn"


async def test_managers_and_teams_by_several_ids(profile) -> None:
    async with profile() as admin:
        await admin.post("/managers/M2/leave", json={})
        ids = [("id", "M3"), ("id", "M1"), ("id", "M2"), ("id", "nobody")]
        active = (await admin.get("/managers", params=ids)).json()
        assert [m["id"] for m in active] == ["M1", "M3"]
        every = (await admin.get("/managers", params=[*ids, ("include_inactive", "true")])).json()
        assert [m["id"] for m in every] == ["M1", "M2", "M3"]
        in_team = (await admin.get("/managers", params=[*ids, ("team_id", "T2")])).json()
        assert [m["id"] for m in in_team] == ["M3"]
        assert [m["id"] for m in (await admin.get("/managers")).json()] == ["M1", "M3"]
        teams = (await admin.get("/teams", params=[("id", "T2"), ("id", "T9")])).json()
        assert [t["id"] for t in teams] == ["T2"]
        assert [t["id"] for t in (await admin.get("/teams")).json()] == ["T1", "T2"]
    async with profile(role="partner", user="P1", scopes=["customers:read"]) as partner:
        managers = (await partner.get("/managers", params=[("id", "M1")])).json()
        assert [m["phone"] for m in managers] == ["139****0001"]


async def test_more_than_a_hundred_ids_is_refused_naming_the_field(profile) -> None:
    async with profile() as admin:
        for path in ("/managers", "/teams"):
            refused = await admin.get(path, params=[("id", f"X{i}") for i in range(101)])
            assert refused.status_code == 422 and refused.json()["field"] == "id"
