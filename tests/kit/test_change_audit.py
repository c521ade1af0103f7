"""The change audit (services/kit/audit.py): every write through a service's API that
committed leaves one row in that service's ``change_audit`` (who, what, when, the request
id, the status), a refused write or a read leaves none, only admins read it, and no row can
be changed or removed but by an erasure, which may only file a number under its stand-in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.care.app import create_app as create_care_app
from services.complaint.app import create_app as create_complaint_app
from services.kit import clock
from services.kit.app import create_service_app
from services.kit.audit import AuditedRoute
from services.kit.auth import Role, require_role
from services.kit.config import Settings
from services.kit.erasure import audit_rewrite, scrub_events
from services.profile.app import create_app as create_profile_app
from services.warning.app import create_app as create_warning_app

APPS = {
    "profile": create_profile_app,
    "warning": create_warning_app,
    "care": create_care_app,
    "complaint": create_complaint_app,
}
TEAM = {"id": "T9", "name": "广州越秀VIP团队", "region": "广东", "supervisor_name": "周敏"}


async def changes(app_client: Callable[..., Any], service: str, **params: Any) -> list[Any]:
    async with app_client(APPS[service]()) as admin:
        answer = await admin.get("/audit/changes", params=params)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


def who_what(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["user_id"],
        row["role"],
        row["team_id"],
        row["method"],
        row["route"],
        row["resource_ids"],
        row["status"],
        row["request_id"],
    )


async def test_a_write_through_each_services_api_records_who_what_when_and_the_request(
    infra: Any, app_client: Callable[..., Any]
) -> None:
    before = clock.now()
    async with app_client(create_profile_app(), role="operator", user="O1") as operator:
        created = await operator.post("/teams", json=TEAM, headers={"X-Request-ID": "req-p1"})
        renamed = await operator.patch("/teams/T9", json={"name": "越秀VIP团队"})
    async with app_client(
        create_warning_app(), role="partner", user="partner-bss", scopes=["usage:write"]
    ) as partner:
        queued = await partner.post(
            "/detection/runs?day=2026-11-20", headers={"X-Request-ID": "req-w1"}
        )
    async with app_client(create_care_app(), role="manager", user="m1", team="t1") as manager:
        campaign = await manager.post(
            "/campaigns",
            json={"name": "名单", "template": "{honorific}您好", "audience": {"source": "list"}},
        )
        cid = campaign.json()["id"]
        listed = await manager.post(
            f"/campaigns/{cid}/audience-list", json={"msisdns": ["14709036453"]}
        )
        removed = await manager.delete(
            f"/campaigns/{cid}/audience-list/147-0903-6453", headers={"X-Request-ID": "req-c1"}
        )
    async with app_client(create_complaint_app()) as admin:
        category = await admin.post(
            "/categories",
            json={"code": "roaming", "name": "国际漫游"},
            headers={"X-Request-ID": "req-k1"},
        )
    for answer in (created, renamed, queued, campaign, listed, removed, category):
        assert answer.status_code < 300, answer.text

    profile = await changes(app_client, "profile")
    warning = await changes(app_client, "warning")
    care = await changes(app_client, "care")
    complaint = await changes(app_client, "complaint")

    # Newest first; the path's parameters by the template, a number normalised.
    assert [who_what(r)[:7] for r in profile] == [
        ("O1", "operator", None, "PATCH", "/teams/{team_id}", ["T9"], 200),
        ("O1", "operator", None, "POST", "/teams", [], 201),
    ]
    assert profile[1]["request_id"] == "req-p1" and profile[0]["request_id"]
    # A partner's write, one that touches no table (it queues a job): recorded all the same.
    assert [who_what(r) for r in warning] == [
        ("partner-bss", "partner", None, "POST", "/detection/runs", [], 202, "req-w1")
    ]
    assert [(r["method"], r["route"], r["resource_ids"]) for r in care] == [
        ("DELETE", "/campaigns/{campaign_id}/audience-list/{msisdn}", [cid, "14709036453"]),
        ("POST", "/campaigns/{campaign_id}/audience-list", [cid]),
        ("POST", "/campaigns", []),
    ]
    assert {(r["user_id"], r["role"], r["team_id"]) for r in care} == {("m1", "manager", "t1")}
    assert care[0]["request_id"] == "req-c1"
    assert [who_what(r) for r in complaint] == [
        ("test-user", "admin", None, "POST", "/categories", [], 201, "req-k1")
    ]
    for row in profile + warning + care + complaint:
        assert before <= datetime.fromisoformat(row["at"]) <= clock.now()
        assert row["caller"] is None


async def test_a_refused_write_and_a_read_record_nothing(
    infra: Any, app_client: Callable[..., Any]
) -> None:
    async with app_client(create_profile_app(), role="operator", user="O1") as operator:
        assert (await operator.post("/teams", json=TEAM)).status_code == 201
        again = await operator.post("/teams", json=TEAM)  # the id is taken
        invalid = await operator.post("/teams", json={**TEAM, "id": "T8", "region": "火星"})
        missing = await operator.patch("/teams/T404", json={"name": "无此团队"})
        reads = [await operator.get("/teams"), await operator.get("/teams/T9")]
    async with app_client(create_complaint_app()) as admin:
        assert (await admin.post("/categories", json={"code": "x1", "name": "一"})).is_success
        # Refused after the route had written nothing yet; and refused by its role gate.
        taken = await admin.post("/categories", json={"code": "x1", "name": "二"})
    async with app_client(create_complaint_app(), role="manager", user="M1") as manager:
        forbidden = await manager.post("/categories", json={"code": "x2", "name": "二"})

    assert [again.status_code, invalid.status_code, missing.status_code] == [409, 422, 404]
    assert all(r.status_code == 200 for r in reads)
    assert [taken.status_code, forbidden.status_code] == [422, 403]
    assert [r["route"] for r in await changes(app_client, "profile")] == ["/teams"]
    assert [r["route"] for r in await changes(app_client, "complaint")] == ["/categories"]


@pytest.mark.parametrize("service", list(APPS))
async def test_only_admins_read_the_change_audit(
    service: str, infra: Any, app_client: Callable[..., Any]
) -> None:
    for role in ("operator", "supervisor", "manager", "partner"):
        async with app_client(APPS[service](), role=role, user="u1", team="T1") as client:
            answer = await client.get("/audit/changes")
        assert answer.status_code == 403, (role, answer.text)
        assert answer.json()["code"] == "forbidden"
    assert await changes(app_client, service) == []


async def test_filters_and_pages_newest_first(infra: Any, app_client: Callable[..., Any]) -> None:
    async with app_client(create_profile_app(), role="operator", user="O1") as operator:
        for n in range(5):
            team = {**TEAM, "id": f"T{n}"}
            assert (await operator.post("/teams", json=team)).status_code == 201
    async with app_client(create_profile_app(), role="operator", user="O2") as other:
        assert (await other.patch("/teams/T3", json={"name": "改名"})).status_code == 200

    by_o1 = await changes(app_client, "profile", user_id="O1")
    on_t3 = await changes(app_client, "profile", resource_id="T3")
    patches = await changes(app_client, "profile", route="/teams/{team_id}")
    today = clock.today()
    within = await changes(
        app_client,
        "profile",
        **{"from": today.isoformat(), "to": (today + timedelta(1)).isoformat()},
    )
    later = await changes(app_client, "profile", **{"from": (today + timedelta(1)).isoformat()})
    async with app_client(create_profile_app()) as admin:
        first = (await admin.get("/audit/changes", params={"limit": 4})).json()
        rest = (
            await admin.get("/audit/changes", params={"limit": 4, "cursor": first["next_cursor"]})
        ).json()
        bad = await admin.get("/audit/changes", params={"cursor": "!!"})
        backwards = await admin.get(
            "/audit/changes", params={"from": today.isoformat(), "to": today.isoformat()}
        )

    assert len(by_o1) == 5 and {r["user_id"] for r in by_o1} == {"O1"}
    assert [(r["user_id"], r["method"]) for r in on_t3] == [("O2", "PATCH")]
    assert [r["resource_ids"] for r in patches] == [["T3"]]
    assert len(within) == 6 and later == []
    ids = [r["id"] for r in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert len(first["items"]) == 4 and rest["next_cursor"] is None
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"


async def test_rows_cannot_be_changed_or_removed_but_an_erasure_may_file_the_number_anew(
    infra: Any, engine: AsyncEngine, app_client: Callable[..., Any]
) -> None:
    async with app_client(create_care_app(), role="manager", user="m1", team="t1") as manager:
        cid = (
            await manager.post(
                "/campaigns",
                json={"name": "名单", "template": "您好", "audience": {"source": "list"}},
            )
        ).json()["id"]
        await manager.post(f"/campaigns/{cid}/audience-list", json={"msisdns": ["14709036453"]})
        removed = await manager.delete(f"/campaigns/{cid}/audience-list/14709036453")
    assert removed.is_success, removed.text

    for statement in (
        "UPDATE care.change_audit SET user_id = 'someone-else'",
        "DELETE FROM care.change_audit",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    async with engine.begin() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            async with conn.begin_nested():
                await conn.execute(text("SELECT set_config('keepwell.erasure', 'on', true)"))
                await conn.execute(text("UPDATE care.change_audit SET route = '/elsewhere'"))

    # What an erasure does (services/kit/erasure.py scrub_events): the number gives way.
    async with AsyncSession(engine) as session, session.begin():
        await scrub_events(session, "care", "14709036453", "00000000042")
    rows = await changes(app_client, "care")
    assert rows[0]["resource_ids"] == [cid, "00000000042"]
    assert [r["user_id"] for r in rows] == ["m1"] * 3
    assert all("14709036453" not in r["resource_ids"] for r in rows)
    async with AsyncSession(engine) as session, session.begin(), audit_rewrite(session):
        async with audit_rewrite(session):
            pass
        # An inner block leaves the outer one's setting on.
        assert await session.scalar(text("SELECT current_setting('keepwell.erasure')")) == "on"


def test_an_app_with_a_write_that_would_not_be_audited_is_refused(settings: Settings) -> None:
    def router(**kwargs: Any) -> APIRouter:
        made = APIRouter(**kwargs)

        @made.post("/things", dependencies=[Depends(require_role(Role.operator))])
        async def create_thing() -> dict[str, bool]:
            return {"ok": True}

        return made

    def app(made: APIRouter) -> Any:
        return create_service_app("t", title="t", description="", routers=[made], settings=settings)

    with pytest.raises(RuntimeError, match=r"would not be audited: \[\('POST', '/things'\)\]"):
        app(router())
    assert app(router(route_class=AuditedRoute))
