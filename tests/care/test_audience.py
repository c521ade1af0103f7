"""Audiences as a manager builds them: a list never silently replaces a filter, list entries
are checked like profile's numbers, and filter values are profile's own (issue #19)."""

from __future__ import annotations

import httpx
from care_support import SeedCustomers, snapshot

from services.care.app import create_app
from services.care.config import CareSettings

TEMPLATE = "{honorific}您好"


async def create(client: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    response = await client.post(
        "/campaigns", json={"name": "名单", "template": TEMPLATE, **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_list_upload_on_a_filter_campaign_is_refused_and_keeps_the_filter(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    await seed_customers(snapshot("13800000001", tier="diamond"), snapshot("13800000002"))
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        campaign = await create(client, audience={"tiers": ["diamond"]})
        cid = campaign["id"]
        upload = await client.post(
            f"/campaigns/{cid}/audience-list", json={"msisdns": ["13800000002"]}
        )
        after = (await client.get(f"/campaigns/{cid}")).json()
        preview = (await client.post(f"/campaigns/{cid}/preview")).json()
        mixed = await client.post(
            "/campaigns",
            json={"name": "x", "template": "x", "audience": {"source": "list", "tiers": ["gold"]}},
        )

    assert upload.status_code == 409
    assert upload.json()["code"] == "audience_conflict"
    assert "tiers" in upload.json()["message"]
    assert after["audience"] == {"source": "filter", "tiers": ["diamond"]}
    assert preview["audience"] == 1
    assert mixed.status_code == 422


async def test_list_entries_are_normalised_checked_reported_and_removable(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    await seed_customers(snapshot("15572114608"), snapshot("13800000001"))
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        cid = (await create(client, audience={"source": "list"}))["id"]
        first = await client.post(
            f"/campaigns/{cid}/audience-list",
            json={"msisdns": ["14709036453", "12345", "+86 155-7211-4608", "abc", "15572114608"]},
        )
        again = await client.post(
            f"/campaigns/{cid}/audience-list",
            json={"msisdns": ["0086 138 0000 0001", "14709036453"]},
        )
        removed = await client.delete(f"/campaigns/{cid}/audience-list/147-0903-6453")
        missing = await client.delete(f"/campaigns/{cid}/audience-list/14709036453")
        preview = (await client.post(f"/campaigns/{cid}/preview")).json()

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["added"] == 2
    assert body["duplicates"] == ["15572114608"]
    assert body["not_customers"] == ["14709036453"]
    assert [(e["position"], e["value"]) for e in body["rejected"]] == [(2, "12345"), (4, "abc")]
    assert all("手机号码" in e["reason"] for e in body["rejected"])
    assert body["list_size"] == 2
    assert again.json()["added"] == 1
    assert again.json()["duplicates"] == ["14709036453"]
    assert removed.json() == {"removed": 1, "list_size": 2}
    assert (missing.status_code, missing.json()["code"]) == (404, "not_on_list")
    assert preview["audience"] == 2
    assert preview["suppressed"] == {}


async def test_filter_values_are_profiles_own_enums_and_regions(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    await seed_customers(snapshot("13800000001", region="广东"))
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        bad = {
            field: await client.post(
                "/campaigns", json={"name": "x", "template": "x", "audience": {field: [value]}}
            )
            for field, value in [
                ("tiers", "Gold"),
                ("service_levels", "a"),
                ("lifecycles", "old"),
                ("regions", "火星"),
            ]
        }
        province = await create(client, audience={"regions": ["广东省"], "tiers": ["gold"]})
        alert = await client.post(
            "/alerts", json={"name": "台风", "regions": ["火星"], "template": "注意防台"}
        )

    for field, response in bad.items():
        assert response.status_code == 422, (field, response.text)
        assert response.json()["field"].startswith(f"audience.{field}")
    assert province["audience"] == {"source": "filter", "regions": ["广东"], "tiers": ["gold"]}
    assert (alert.status_code, alert.json()["field"]) == (422, "regions.0")
