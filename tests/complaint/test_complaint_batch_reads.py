"""The batched read the gateway's loader makes: complaints of several numbers at once."""

from __future__ import annotations

from typing import Any

from complaint_support import CUSTOMER, DIAMOND, OTHER_TEAM, Api, complaint_body

ALL = [("msisdn", n) for n in ("+86 138-0000-0001", DIAMOND, OTHER_TEAM, "13899999999")]


async def _open(api: Api) -> dict[str, str]:
    ids = {}
    async with api() as admin:
        for number in (CUSTOMER, DIAMOND, OTHER_TEAM):
            opened = await admin.post("/complaints", json=complaint_body(number))
            assert opened.status_code == 201, opened.text
            ids[number] = opened.json()["id"]
    return ids


async def test_complaints_of_several_numbers_with_the_other_filters(api: Api) -> None:
    ids = await _open(api)
    async with api() as admin:
        page = (await admin.get("/complaints", params=ALL)).json()
        assert [t["msisdn"] for t in page["items"]] == [OTHER_TEAM, DIAMOND, CUSTOMER]
        first = (await admin.get("/complaints", params=[*ALL, ("limit", "2")])).json()
        rest = (
            await admin.get("/complaints", params=[*ALL, ("cursor", first["next_cursor"])])
        ).json()
        assert [t["id"] for t in first["items"] + rest["items"]] == [
            ids[OTHER_TEAM],
            ids[DIAMOND],
            ids[CUSTOMER],
        ]
        closed = await admin.get("/complaints", params=[*ALL, ("state", "closed")])
        assert closed.json()["items"] == []
        in_team = await admin.get("/complaints", params=[*ALL, ("team_id", "t2")])
        assert [t["msisdn"] for t in in_team.json()["items"]] == [OTHER_TEAM]
        one = await admin.get("/complaints", params={"msisdn": DIAMOND})
        assert [t["msisdn"] for t in one.json()["items"]] == [DIAMOND]


async def test_batched_complaints_keep_the_callers_scope(api: Api) -> None:
    await _open(api)
    async with api("manager", user="m2", team="t1") as colleague:
        page = (await colleague.get("/complaints", params=ALL)).json()
        assert {t["msisdn"] for t in page["items"]} == {CUSTOMER, DIAMOND}
    async with api("supervisor", user="sup-2", team="t2") as stranger:
        page = (await stranger.get("/complaints", params=ALL)).json()
        assert [t["msisdn"] for t in page["items"]] == [OTHER_TEAM]
    async with api("partner", user="p1") as partner:
        assert (await partner.get("/complaints", params=ALL)).status_code == 403


async def test_more_than_a_hundred_numbers_is_refused_naming_the_field(api: Api) -> None:
    numbers = [("msisdn", f"1380000{i:04d}") for i in range(101)]
    async with api() as admin:
        assert (await admin.get("/complaints", params=numbers[:100])).status_code == 200
        refused = await admin.get("/complaints", params=numbers)
        assert refused.status_code == 422 and refused.json()["field"] == "msisdn"
        bad = await admin.get("/complaints", params={"msisdn": "555"})
        assert bad.status_code == 422 and bad.json()["field"] == "msisdn"


def frozen(view: dict[str, Any]) -> dict[str, Any]:
    return {
        **view,
        "metrics": [{k: v for k, v in m.items() if k != "used_seconds"} for m in view["metrics"]],
    }


async def test_the_sla_clocks_of_several_complaints_in_one_call(api: Api) -> None:
    ids = await _open(api)
    wanted = [("id", str(i)) for i in (*ids.values(), 999999)]
    async with api() as admin:
        slas = (await admin.get("/complaints/sla", params=wanted)).json()
        assert [s["complaint_id"] for s in slas] == sorted(ids.values())
        single = (await admin.get(f"/complaints/{ids[DIAMOND]}/sla")).json()
        batched = next(s for s in slas if s["complaint_id"] == ids[DIAMOND])
        # The clocks run between the two reads: what they used so far is the one difference.
        assert frozen(batched) == frozen({**single, "complaint_id": ids[DIAMOND]})
        too_many = [("id", str(i)) for i in range(1, 102)]
        refused = await admin.get("/complaints/sla", params=too_many)
        assert refused.status_code == 422 and refused.json()["field"] == "id"
    async with api("supervisor", user="sup-2", team="t2") as stranger:
        slas = (await stranger.get("/complaints/sla", params=wanted)).json()
        assert [s["complaint_id"] for s in slas] == [ids[OTHER_TEAM]]
