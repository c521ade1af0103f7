"""Checks a manager's day showed missing in profile (issue #19, items 14 and 15)."""

from __future__ import annotations

from datetime import timedelta

from services.kit import clock
from tests.profile.conftest import customer


async def test_a_contact_dated_ahead_of_now_is_refused(profile, teams) -> None:
    async with profile() as client:
        await client.post("/customers", json=customer("13800000001"))
        future = await client.post(
            "/customers/13800000001/contacts",
            json={
                "channel": "visit",
                "outcome": "reached",
                "at": (clock.now() + timedelta(days=1500)).isoformat(),  # as in #19: 2031
            },
        )
        hour = await client.post(
            "/customers/13800000001/contacts",
            json={
                "channel": "visit",
                "outcome": "reached",
                "at": (clock.now() + timedelta(hours=1)).isoformat(),
            },
        )
        now = await client.post(
            "/customers/13800000001/contacts",
            json={"channel": "visit", "outcome": "reached", "at": clock.now().isoformat()},
        )
    assert (future.status_code, future.json()["field"]) == (422, "at")
    assert hour.status_code == 422
    assert now.status_code == 201


async def test_a_managers_phone_is_checked_like_a_customers_number(profile, teams) -> None:
    async with profile() as client:
        short = await client.post(
            "/managers", json={"id": "M9", "name": "赵敏", "phone": "1380000", "team_id": "T1"}
        )
        usual = await client.post(
            "/managers",
            json={"id": "M9", "name": "赵敏", "phone": "+86 139-0000-0009", "team_id": "T1"},
        )
        bad_change = await client.patch("/managers/M9", json={"phone": "12345"})

    assert (short.status_code, short.json()["field"]) == (422, "phone")
    assert "手机号码" in short.json()["message"]
    assert usual.status_code == 201 and usual.json()["phone"] == "13900000009"
    assert (bad_change.status_code, bad_change.json()["field"]) == (422, "phone")
