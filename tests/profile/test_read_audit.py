"""The audit of unmasked reads of customers' personal data, through the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock
from services.profile.config import get_profile_settings
from tests.profile.conftest import customer


@pytest.fixture
def personal_attribute(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A deployment with an ID-like custom attribute marked personal, and one that is not."""
    monkeypatch.setenv(
        "PROFILE_CUSTOM_ATTRIBUTES",
        '{"id_card_no": {"type": "string", "personal": true}, "shoe_size": {"type": "integer"}}',
    )
    get_profile_settings.cache_clear()
    yield
    get_profile_settings.cache_clear()


async def _audit(client: Any, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/audit/reads", params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_an_unmasked_read_leaves_a_row_with_the_request_id(
    profile, teams, personal_attribute
) -> None:
    async with profile() as admin:
        created = await admin.post(
            "/customers",
            json=customer(
                "13800000001",
                family_notes="女儿在读大学",
                custom={"id_card_no": "440101197505201234", "shoe_size": 42},
            ),
        )
        assert created.status_code == 201, created.text
    async with profile(role="manager", user="M1", team="T1") as manager:
        read = await manager.get("/customers/13800000001", headers={"X-Request-ID": "req-audit-1"})
    assert read.json()["msisdn"] == "13800000001"
    async with profile() as admin:
        rows = await _audit(admin, user_id="M1")
        creation = await _audit(admin, user_id="test-user")
    assert len(rows) == 1
    row = rows[0]
    assert (row["user_id"], row["role"], row["caller"], row["request_id"]) == (
        "M1",
        "manager",
        None,
        "req-audit-1",
    )
    assert (row["action"], row["msisdn"], row["fields"]) == (
        "GET /customers/{msisdn}",
        "13800000001",
        ["msisdn", "family_notes", "custom.id_card_no"],
    )
    assert row["customer_id"] == read.json()["id"]
    # The creating admin was served the archive too.
    assert [r["action"] for r in creation] == ["POST /customers"]


async def test_a_list_leaves_one_row_per_customer_served(profile, teams) -> None:
    async with profile() as admin:
        for n in (1, 2, 3):
            await admin.post("/customers", json=customer(f"1380000000{n}"))
        await admin.post("/customers", json=customer("13800000009", manager_id="M3"))
    async with profile(role="supervisor", user="S1", team="T1") as supervisor:
        listed = await supervisor.get("/customers", headers={"X-Request-ID": "req-list"})
        for _ in range(2):
            await supervisor.post(
                "/customers/13800000001/contacts", json={"channel": "call", "outcome": "reached"}
            )
        contacts = await supervisor.get("/customers/13800000001/contacts")
    assert len(listed.json()["items"]) == 3
    assert len(contacts.json()["items"]) == 2
    async with profile() as admin:
        rows = await _audit(admin, user_id="S1")
        one_customer = await _audit(admin, msisdn="138 0000 0002")
    by_action: dict[str, list[tuple[str, str | None]]] = {}
    for r in rows:
        by_action.setdefault(r["action"], []).append((r["msisdn"], r["request_id"]))
    assert sorted(by_action["GET /customers"]) == [
        ("13800000001", "req-list"),
        ("13800000002", "req-list"),
        ("13800000003", "req-list"),
    ]
    # Two entries of one customer: one row.
    assert [m for m, _ in by_action["GET /customers/{msisdn}/contacts"]] == ["13800000001"]
    assert len(by_action["POST /customers/{msisdn}/contacts"]) == 2
    assert {r["action"] for r in one_customer} == {"POST /customers", "GET /customers"}


async def test_a_masked_read_leaves_none_and_hides_personal_fields(
    profile, teams, personal_attribute
) -> None:
    async with profile() as admin:
        await admin.post(
            "/customers",
            json=customer(
                "13800000001",
                family_notes="女儿在读大学",
                custom={"id_card_no": "440101197505201234", "shoe_size": 42},
            ),
        )
    async with profile(role="partner", user="crm-x", scopes=["customers:read"]) as partner:
        one = (await partner.get("/customers/13800000001")).json()
        listed = (await partner.get("/customers")).json()["items"]
    assert (one["msisdn"], one["family_notes"], one["custom"]) == (
        "138****0001",
        None,
        {"shoe_size": 42},
    )
    assert listed[0]["msisdn"] == "138****0001"
    async with profile() as admin:
        assert await _audit(admin, user_id="crm-x") == []


async def test_only_admins_read_the_audit(profile, teams) -> None:
    for role, claims in (
        ("operator", {}),
        ("supervisor", {"user": "S1", "team": "T1"}),
        ("manager", {"user": "M1", "team": "T1"}),
        ("partner", {"user": "crm-x"}),
    ):
        async with profile(role=role, **claims) as client:
            refused = await client.get("/audit/reads")
        assert refused.status_code == 403, role


async def test_the_audit_is_newest_first_by_cursor_and_by_beijing_day(profile, teams) -> None:
    async with profile() as admin:
        for n in (1, 2, 3):
            await admin.post("/customers", json=customer(f"1380000000{n}"))
        first = (await admin.get("/audit/reads", params={"limit": 2})).json()
        rest = (
            await admin.get("/audit/reads", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        today = clock.today()
        on_today = await _audit(admin, **{"from": str(today)})
        before_today = await _audit(admin, to=str(today))
        bad_cursor = await admin.get("/audit/reads", params={"cursor": "zzz"})
    assert [r["msisdn"] for r in first["items"]] == ["13800000003", "13800000002"]
    assert [r["msisdn"] for r in rest["items"]] == ["13800000001"]
    assert rest["next_cursor"] is None
    assert len(on_today) == 3 and before_today == []
    assert (bad_cursor.status_code, bad_cursor.json()["field"]) == (422, "cursor")


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements every engine of this process sends while the block runs."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_a_page_of_fifty_costs_one_more_statement(
    profile, teams, engine: AsyncEngine
) -> None:
    async with profile() as admin:
        for n in range(50):
            await admin.post("/customers", json=customer(f"1380000{n:04d}"))
    async with profile(role="partner", user="crm-x", scopes=["customers:read"]) as partner:
        await partner.get("/customers", params={"limit": 50})  # warm up the app
        with statements() as masked:
            assert (
                len((await partner.get("/customers", params={"limit": 50})).json()["items"]) == 50
            )
    async with profile(role="supervisor", user="S1", team="T1") as supervisor:
        await supervisor.get("/customers", params={"limit": 1})
        with statements() as unmasked:
            page = await supervisor.get("/customers", params={"limit": 50})
            assert len(page.json()["items"]) == 50
    extra = [s for s in unmasked if "read_audit" in s]
    assert len(extra) == 1 and "unnest" in extra[0]
    assert len(unmasked) == len(masked) + 1
    async with engine.connect() as conn:
        written = (
            await conn.execute(text("SELECT count(*) FROM profile.read_audit WHERE user_id = 'S1'"))
        ).scalar()
    assert written == 51
