"""Personal data on request (PIPL): an admin asks for one customer's erasure, a second
person approves, profile anonymises the archive and every service that keeps a copy
anonymises it and confirms; afterwards no route of any service gives back the name, the
number or the free text, a replay of every retained event and a read-model rebuild do not
bring them back, and the counts and rates are what they were. The export gathers every
service's part. The retention jobs anonymise only text older than the retention.

The four services are served over HTTP; their relays deliver the events (run by hand here,
as the workers' sweeps run them every few seconds).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keepwell.export import export_customer
from services.care.app import create_app as create_care_app
from services.care.ops import rebuild_read_model
from services.complaint import service as complaint_service
from services.complaint.app import create_app as create_complaint_app
from services.complaint.jobs import anonymise_old_texts
from services.kit import clock
from services.kit.app import Resources
from services.kit.config import SCHEMAS, Settings
from services.kit.db import create_sessionmaker, session_scope
from services.kit.events.relay import Relay
from services.kit.testing import serve
from services.profile.app import create_app as create_profile_app
from services.profile.jobs import anonymise_old_contact_text
from services.warning.app import create_app as create_warning_app
from services.warning.ops import rebuild_customers as rebuild_warning_customers

VICTIM = "13800000001"
OTHER = "13800000002"
NAME = "王建国"
# Free text that names the person or what they said: none of it may survive.
SECRETS = (VICTIM, NAME, "王先生", "家住天河北路", "老婆也用我们的号", "信号差到要搬家")
SERVICES = ("profile", "warning", "care", "complaint")


@dataclass
class World:
    clients: dict[str, httpx.AsyncClient]
    urls: dict[str, str]
    relays: list[Relay]
    engine: AsyncEngine
    settings: Settings
    token: Callable[..., str]

    async def events(self) -> None:
        """Every event delivered, every way, until nothing is left."""
        while sum([await relay.run() for relay in self.relays]):
            pass

    def as_(self, role: str, user: str, team: str | None = None) -> dict[str, str]:
        claims = {"user": user} | ({"team": team} if team else {})
        return {"Authorization": f"Bearer {self.token(role, **claims)}"}

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)


def customer(msisdn: str, name: str, family_notes: str) -> dict[str, Any]:
    return {
        "msisdn": msisdn,
        "name": name,
        "gender": "male",
        "birthday": "1975-05-20",
        "region": "广东",
        "city": "广州",
        "join_date": "2012-03-01",
        "plan_name": "全球通199",
        "plan_fee": "199.00",
        "tier": "gold",
        "service_level": "A",
        "manager_id": "M1",
        "family_notes": family_notes,
        "tags": ["商旅客户"],
        "interests": ["高尔夫"],
    }


@pytest.fixture
async def world(
    settings: Settings, engine: AsyncEngine, token: Callable[..., str]
) -> AsyncIterator[World]:
    admin = {"Authorization": f"Bearer {token('admin', user='A1')}"}
    async with (
        serve(create_profile_app(settings)) as profile_url,
        serve(create_warning_app(settings)) as warning_url,
        serve(create_care_app(settings)) as care_url,
        serve(create_complaint_app(settings)) as complaint_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        urls = dict(zip(SERVICES, (profile_url, warning_url, care_url, complaint_url), strict=True))
        clients = {s: httpx.AsyncClient(base_url=u, headers=admin) for s, u in urls.items()}
        sessions = create_sessionmaker(engine)
        world = World(
            clients=clients,
            urls=urls,
            relays=[
                Relay(s, sessions, http, settings, service_url=urls.__getitem__) for s in SERVICES
            ],
            engine=engine,
            settings=settings,
            token=token,
        )
        async with session_scope(sessions) as session:
            await complaint_service.install_defaults(session)
        profile = clients["profile"]
        for path, body in (
            ("/teams", {"id": "T1", "name": "广州VIP一组", "region": "广东",
                        "supervisor_id": "S1", "supervisor_name": "周敏"}),
            ("/teams", {"id": "T2", "name": "深圳VIP一组", "region": "广东",
                        "supervisor_id": "S2", "supervisor_name": "马强"}),
            ("/managers", {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}),
            ("/customers", customer(VICTIM, NAME, "老婆也用我们的号")),
            ("/customers", customer(OTHER, "陈丽", "女儿在读大学")),
        ):  # fmt: skip
            response = await profile.post(path, json=body)
            assert response.status_code == 201, response.text
        await world.events()
        yield world
        for client in clients.values():
            await client.aclose()


# What the victim and the other customer said and wrote (contact, complaint, follow-up).
TEXTS = {
    VICTIM: ("家住天河北路，周末在家", "信号差到要搬家，王先生很生气", "王先生说信号差到要搬家"),
    OTHER: ("在深圳出差", "话费扣得不明不白", "陈女士接受了解释"),
}


async def history(world: World, msisdn: str) -> int:
    """Give the customer a history in every service: a contact note in profile, a
    complaint (which raises a complaint warning and care's acknowledgement SMS), a
    follow-up on that warning with a note. Returns the complaint's id."""
    note, description, follow_up_note = TEXTS[msisdn]
    contact = await world.clients["profile"].post(
        f"/customers/{msisdn}/contacts",
        json={"channel": "visit", "outcome": "reached", "note": note},
    )
    assert contact.status_code == 201, contact.text
    opened = await world.clients["complaint"].post(
        "/complaints",
        json={
            "msisdn": msisdn,
            "channel": "hotline",
            "category": "network_signal",
            "description": description,
            "needs": ["be_heard", "fix_now"],
        },
    )
    assert opened.status_code == 201, opened.text
    await world.events()
    follow_up = await world.clients["warning"].post(
        f"/subscribers/{msisdn}/contacts",
        json={"channel": "call", "outcome": "reached", "note": follow_up_note},
    )
    assert follow_up.status_code == 201, follow_up.text
    await world.events()
    return int(opened.json()["id"])


async def aggregates(world: World) -> dict[str, Any]:
    """What the KPIs and lists count: reach rate, complaints, warnings, care's messages."""
    today = clock.today()
    period = {"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    reach = await world.clients["profile"].get(
        "/reports/reach", params={**period, "group_by": "team"}
    )
    assert reach.status_code == 200, reach.text
    report = await world.clients["complaint"].get("/reports", params={**period, "group_by": "team"})
    assert report.status_code == 200, report.text
    warnings = await world.clients["warning"].get("/warnings", params={"limit": 500})
    return {
        "reach": reach.json(),
        "complaints": report.json(),
        "warnings": sorted((w["signal"], w["status"]) for w in warnings.json()),
        "messages": await world.scalar("SELECT count(*) FROM care.recipient"),
        "contacts": await world.scalar("SELECT count(*) FROM profile.contact_log"),
    }


async def erase(world: World, msisdn: str = VICTIM) -> dict[str, Any]:
    """Requested by admin A1, approved by the team's supervisor; every event delivered."""
    requested = await world.clients["profile"].post(
        "/erasures", json={"msisdn": msisdn, "reason": "客户书面申请 PIPL-2026-001"}
    )
    assert requested.status_code == 201, requested.text
    erasure = requested.json()
    assert erasure["status"] == "pending" and erasure["stand_in"] is None
    approved = await world.clients["profile"].post(
        f"/erasures/{erasure['id']}/approve", headers=world.as_("supervisor", "S1", "T1")
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "erasing"
    await world.events()
    done = await world.clients["profile"].get(f"/erasures/{erasure['id']}")
    return dict(done.json())


async def everything_served(world: World, stand_in: str, complaint_id: int) -> str:
    """The answers of every route about the customer, by the stand-in and the old number."""
    gets = {
        "profile": [
            f"/customers/{stand_in}", f"/customers/{stand_in}/contacts",
            f"/customers/{stand_in}/managers", f"/customers?msisdn={stand_in}",
            "/customers", f"/customers?q={NAME[:2]}", f"/audit/reads?msisdn={stand_in}",
            f"/exports/{stand_in}", f"/audit/reads?msisdn={VICTIM}",
        ],
        "warning": [
            "/warnings", "/warnings?status=in_progress", f"/warnings?msisdn={stand_in}",
            f"/subscribers/{stand_in}/risk", f"/risk?msisdn={stand_in}", f"/exports/{stand_in}",
            f"/warnings?msisdn={VICTIM}",
        ],
        "care": [
            f"/messages?msisdn={stand_in}", f"/tasks?msisdn={stand_in}", "/tasks",
            f"/sms/replies?msisdn={stand_in}", f"/exports/{stand_in}",
            f"/messages?msisdn={VICTIM}", f"/tasks?msisdn={VICTIM}",
        ],
        "complaint": [
            f"/complaints?msisdn={stand_in}", f"/complaints/{complaint_id}", "/complaints",
            f"/complaints/{complaint_id}/sla", f"/exports/{stand_in}",
            f"/complaints?msisdn={VICTIM}",
        ],
    }  # fmt: skip
    answers = []
    for service, paths in gets.items():
        for path in (*paths, "/audit/changes?limit=500", f"/audit/changes?resource_id={VICTIM}"):
            response = await world.clients[service].get(path)
            assert response.status_code < 500, (service, path, response.text)
            answers.append(response.text)
    return "\n".join(answers)


async def retained(world: World) -> str:
    """What the event machinery, the kept create answers and the change audit hold, in every
    schema."""
    parts = []
    for schema in SCHEMAS:
        if schema == "gateway":
            continue
        parts.append(
            await world.scalar(
                f"SELECT coalesce(string_agg(o.aggregate_id || ' ' || o.payload::text || ' ' "
                f"|| coalesce(d.aggregate_id, '') || coalesce(d.last_error, ''), E'\\n'), '') "
                f"FROM {schema}.outbox o LEFT JOIN {schema}.delivery d ON d.event_seq = o.seq"
            )
        )
        parts.append(
            await world.scalar(
                f"SELECT coalesce(string_agg(convert_from(body, 'UTF8'), E'\\n'), '') "
                f"FROM {schema}.idempotency_key"
            )
        )
        parts.append(
            await world.scalar(
                f"SELECT coalesce(string_agg(route || ' ' || array_to_string(resource_ids, ' '), "
                f"E'\\n'), '') FROM {schema}.change_audit"
            )
        )
    return "\n".join(parts)


def leaked(answers: str) -> list[str]:
    return [s for s in SECRETS if s in answers]


async def test_an_approved_erasure_leaves_nothing_of_the_customer_in_any_service(
    world: World,
) -> None:
    complaint_id = await history(world, VICTIM)
    await history(world, OTHER)
    before = await aggregates(world)
    # The customer's data is there before (the search below would find it).
    assert leaked(await world.scalar("SELECT payload::text FROM profile.outbox LIMIT 1"))

    erasure = await erase(world)

    assert erasure["status"] == "completed", erasure
    assert sorted(erasure["receipts"]) == sorted(SERVICES) and erasure["waiting_for"] == []
    assert erasure["receipts"]["complaint"]["counts"]["tickets"] == 1
    assert erasure["receipts"]["warning"]["counts"]["contact"] == 1
    assert erasure["approved_by"] == "S1" and erasure["requested_by"] == "A1"
    stand_in = erasure["stand_in"]
    assert stand_in.startswith("0") and len(stand_in) == 11
    record = json.dumps(erasure, ensure_ascii=False)
    assert leaked(record) == []

    archive = (await world.clients["profile"].get(f"/customers/{stand_in}")).json()
    assert archive["name"] == "已删除客户" and archive["tier"] == "gold"
    assert archive["family_notes"] is None and archive["birthday"] is None
    assert archive["tags"] == [] and archive["sms_opt_out"] is True
    assert leaked(await everything_served(world, stand_in, complaint_id)) == []
    assert leaked(await retained(world)) == []
    # Who changed the customer stays on record, under the stand-in.
    for service, route in (
        ("profile", "/customers/{msisdn}/contacts"),
        ("warning", "/subscribers/{msisdn}/contacts"),
    ):
        changes = await world.clients[service].get(f"/audit/changes?resource_id={stand_in}")
        assert [(r["route"], r["resource_ids"]) for r in changes.json()["items"]] == [
            (route, [stand_in])
        ], service
    # By the old number nothing is found any more.
    assert (await world.clients["profile"].get(f"/customers/{VICTIM}")).status_code == 404
    for service in ("warning", "care", "complaint"):
        export = (await world.clients[service].get(f"/exports/{VICTIM}")).json()
        assert all(rows == [] for rows in export.values()), service
    # The other customer keeps everything.
    other = (await world.clients["profile"].get(f"/customers/{OTHER}")).json()
    assert other["name"] == "陈丽" and other["family_notes"] == "女儿在读大学"

    assert await aggregates(world) == before


async def test_a_replay_of_every_event_and_a_rebuild_do_not_bring_it_back(world: World) -> None:
    complaint_id = await history(world, VICTIM)
    erasure = await erase(world)
    stand_in = erasure["stand_in"]

    # Every event of every service delivered again, as if the inboxes had forgotten them
    # (an operator replaying dead deliveries, a relay killed before recording).
    async with world.engine.begin() as conn:
        for schema in ("profile", "warning", "care", "complaint"):
            await conn.execute(text(f"DELETE FROM {schema}.inbox"))
            await conn.execute(
                text(
                    f"UPDATE {schema}.delivery SET status = 'pending', attempts = 0, "
                    "next_attempt_at = now(), delivered_at = NULL, claim = NULL"
                )
            )
    await world.events()
    summary = await rebuild_read_model(world.settings, profile_url=world.urls["profile"])
    assert summary["fetched"] == 2
    await rebuild_warning_customers(world.urls["profile"])

    assert leaked(await everything_served(world, stand_in, complaint_id)) == []
    for schema in ("warning", "care", "complaint"):
        names = await world.scalar(
            f"SELECT string_agg(msisdn || name, ',' ORDER BY msisdn) FROM {schema}.customer"
        )
        assert names == f"{stand_in}已删除客户,{OTHER}陈丽", (schema, names)
    done = (await world.clients["profile"].get(f"/erasures/{erasure['id']}")).json()
    assert done["status"] == "completed"


async def test_the_export_has_every_services_part(world: World) -> None:
    await history(world, VICTIM)

    document = await export_customer(world.settings, VICTIM, "A1", url_of=world.urls.__getitem__)

    parts = document["services"]
    assert sorted(parts) == sorted(SERVICES)
    assert parts["profile"]["customer"]["name"] == NAME
    notes = {c["note"] for c in parts["profile"]["contact_log"]}
    assert {"家住天河北路，周末在家", "王先生说信号差到要搬家"} <= notes
    descriptions = [t["description"] for t in parts["complaint"]["tickets"]]
    assert descriptions == ["信号差到要搬家，王先生很生气"]
    assert [w["signal"] for w in parts["warning"]["warnings"]] == ["complaint"]
    assert parts["warning"]["follow_ups"][0]["note"] == "王先生说信号差到要搬家"
    assert parts["care"]["customer"][0]["name"] == NAME
    assert [m["category"] for m in parts["care"]["messages"]] == ["alert"]
    # An export serves personal data in full: it is audited like any unmasked read.
    audit = (await world.clients["profile"].get("/audit/reads", params={"user_id": "A1"})).json()
    assert "GET /exports/{msisdn}" in {r["action"] for r in audit["items"]}


async def test_four_eyes_and_roles(world: World) -> None:
    profile = world.clients["profile"]
    as_manager = world.as_("manager", "M1", "T1")
    refused = await profile.post(
        "/erasures", json={"msisdn": VICTIM, "reason": "申请"}, headers=as_manager
    )
    assert refused.status_code == 403
    refused = await profile.post(
        "/erasures",
        json={"msisdn": VICTIM, "reason": "申请"},
        headers=world.as_("supervisor", "S1", "T1"),
    )
    assert refused.status_code == 403
    erasure = (await profile.post("/erasures", json={"msisdn": VICTIM, "reason": "申请"})).json()
    again = await profile.post("/erasures", json={"msisdn": VICTIM, "reason": "申请"})
    assert again.status_code == 409 and again.json()["code"] == "erasure_open"
    approve = f"/erasures/{erasure['id']}/approve"

    own = await profile.post(approve)  # the requester, A1
    assert own.status_code == 403 and own.json()["code"] == "forbidden"
    assert (await profile.post(approve, headers=as_manager)).status_code == 403
    other_team = await profile.post(approve, headers=world.as_("supervisor", "S2", "T2"))
    assert other_team.status_code == 404
    assert (await profile.get(f"/customers/{VICTIM}")).json()["name"] == NAME

    approved = await profile.post(approve, headers=world.as_("admin", "A2"))
    assert approved.status_code == 200 and approved.json()["approved_by"] == "A2"
    twice = await profile.post(approve, headers=world.as_("admin", "A3"))
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"
    stand_in = approved.json()["stand_in"]
    gone = await profile.post("/erasures", json={"msisdn": stand_in, "reason": "再次"})
    assert gone.status_code == 422  # a stand-in is no number to ask about
    by_id = await profile.post(
        "/erasures", json={"customer_id": erasure["customer_id"], "reason": "再次"}
    )
    assert by_id.status_code == 409 and by_id.json()["code"] == "already_erased"
    for service in ("warning", "care", "complaint"):
        export = await world.clients[service].get(f"/exports/{OTHER}", headers=as_manager)
        assert export.status_code == 403, service


async def test_retention_anonymises_only_text_older_than_the_period(world: World) -> None:
    complaint_id = await history(world, VICTIM)
    # Close the complaint by hand as if long ago; the note of an old contact too.
    long_ago = clock.now() - timedelta(days=4 * 365)
    async with world.engine.begin() as conn:
        await conn.execute(
            text("UPDATE complaint.ticket SET state = 'closed', closed_at = :at WHERE id = :id"),
            {"at": long_ago, "id": complaint_id},
        )
        await conn.execute(
            text(
                "INSERT INTO profile.contact_log (customer_id, channel, direction, at, by, "
                "outcome, note, source, created_at) SELECT id, 'call', 'outbound', :at, 'M1', "
                "'reached', '三年前的旧记录', 'profile', now() FROM profile.customer "
                "WHERE msisdn = :m"
            ),
            {"at": long_ago, "m": VICTIM},
        )
    # The nightly jobs, as the workers run them; a second night finds nothing left.
    profile_res = Resources.open("profile", world.settings)
    complaint_res = Resources.open("complaint", world.settings)
    try:
        for expected in (1, 0):
            assert await anonymise_old_contact_text({"resources": profile_res}) == expected
            assert await anonymise_old_texts({"resources": complaint_res}) == expected
    finally:
        await profile_res.close()
        await complaint_res.close()

    notes = await world.clients["profile"].get(f"/customers/{VICTIM}/contacts")
    assert sorted(str(c["note"]) for c in notes.json()["items"]) == sorted(
        ["None", "家住天河北路，周末在家", "王先生说信号差到要搬家"]
    )
    ticket = (await world.clients["complaint"].get(f"/complaints/{complaint_id}")).json()
    assert ticket["description"] == "[已删除]"
