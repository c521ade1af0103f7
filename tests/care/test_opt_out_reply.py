"""Consent by reply: a customer answers R (拒收请回复R) through the SMS sandbox, which
pushes the uplink to care as Aliyun pushes SmsUp messages; care stops every later send at
once, profile records the opt-out through care's event, and every read model agrees.

Profile, care, warning and complaint are served over HTTP; the relays of profile and care
deliver their events (run by hand here, as the workers' sweeps run them every few seconds).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from care_support import sent_phones, states, wait_for
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import automatic
from services.care.app import create_app as create_care_app
from services.care.config import CareSettings, get_care_settings
from services.care.dispatch import Dispatcher
from services.care.models import Category, RuleKind
from services.care.schemas import RuleCreate
from services.complaint.app import create_app as create_complaint_app
from services.kit import clock
from services.kit.app import Resources
from services.kit.config import Settings
from services.kit.db import create_sessionmaker
from services.kit.events.relay import Relay
from services.kit.testing import serve
from services.profile.app import create_app as create_profile_app
from services.warning.app import create_app as create_warning_app

REPLIER = "13800000001"
OTHER = "13800000002"


def birthday() -> date:
    """Yesterday, Beijing: automatic care planned for it sends its greetings at once."""
    return clock.today() - timedelta(days=1)


@dataclass
class World:
    profile: httpx.AsyncClient
    care: httpx.AsyncClient
    care_url: str
    sandbox: httpx.AsyncClient
    complaint: httpx.AsyncClient
    profile_relay: Relay
    care_relay: Relay
    complaint_relay: Relay
    engine: AsyncEngine
    token: Callable[..., str]

    async def events(self) -> None:
        """Every event delivered, every way, until nothing is left."""
        while (
            await self.care_relay.run()
            + await self.profile_relay.run()
            + await self.complaint_relay.run()
        ):
            pass

    async def reply(self, content: str, phone: str = REPLIER) -> dict[str, Any]:
        """The customer sends ``content``; returns once care has taken the push."""
        response = await self.sandbox.post("/replies", json={"phone": phone, "content": content})
        assert response.status_code == 201, response.text
        sent = response.json()

        async def taken() -> bool:
            found = (await self.sandbox.get("/replies", params={"phone": phone})).json()
            return any(r["sequence_id"] == sent["sequence_id"] and r["accepted"] for r in found)

        await wait_for(taken, 10, "the uplink push")
        return dict(sent)

    async def replies(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text("SELECT * FROM care.sms_reply ORDER BY id"))
            return [dict(r._mapping) for r in rows]

    async def outbox(self, event_type: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT payload FROM care.outbox WHERE type = :t ORDER BY seq"),
                {"t": event_type},
            )
            return [dict(r[0]) for r in rows]

    async def archive(self, msisdn: str = REPLIER) -> dict[str, Any]:
        response = await self.profile.get(f"/customers/{msisdn}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def copy_opted_out(self, msisdn: str = REPLIER) -> bool:
        async with self.engine.connect() as conn:
            return bool(
                await conn.scalar(
                    text("SELECT sms_opt_out FROM care.customer WHERE msisdn = :m"), {"m": msisdn}
                )
            )


def customer(msisdn: str, name: str, gender: str) -> dict[str, Any]:
    return {
        "msisdn": msisdn,
        "name": name,
        "gender": gender,
        "birthday": birthday().replace(year=1980).isoformat(),
        "region": "广东",
        "city": "广州",
        "join_date": "2012-03-01",
        "plan_name": "全球通199",
        "plan_fee": "199.00",
        "tier": "gold",
        "manager_id": "M1",
    }


@pytest.fixture
async def world(
    settings: Settings,
    engine: AsyncEngine,
    token: Callable[..., str],
    sandbox: httpx.AsyncClient,
    care_settings: CareSettings,
) -> AsyncIterator[World]:
    admin = {"Authorization": f"Bearer {token('admin')}"}
    async with (
        serve(create_profile_app(settings)) as profile_url,
        serve(create_care_app(settings)) as care_url,
        serve(create_warning_app(settings)) as warning_url,
        serve(create_complaint_app(settings)) as complaint_url,
        httpx.AsyncClient(base_url=profile_url, headers=admin) as profile,
        httpx.AsyncClient(base_url=care_url, headers=admin) as care,
        httpx.AsyncClient(base_url=complaint_url, headers=admin) as complaint,
        httpx.AsyncClient(timeout=10) as http,
    ):
        urls = {
            "profile": profile_url,
            "care": care_url,
            "warning": warning_url,
            "complaint": complaint_url,
        }
        sessions = create_sessionmaker(engine)
        world = World(
            profile=profile,
            care=care,
            care_url=care_url,
            sandbox=sandbox,
            complaint=complaint,
            profile_relay=Relay("profile", sessions, http, settings, service_url=urls.__getitem__),
            care_relay=Relay("care", sessions, http, settings, service_url=urls.__getitem__),
            complaint_relay=Relay(
                "complaint", sessions, http, settings, service_url=urls.__getitem__
            ),
            engine=engine,
            token=token,
        )
        configured = await sandbox.post(
            "/control",
            json={
                "uplink_url": f"{care_url}/sms/uplinks/sandbox",
                "uplink_token": care_settings.uplink_secret.get_secret_value(),
            },
        )
        assert configured.status_code == 200
        for path, body in (
            (
                "/teams",
                {"id": "T1", "name": "广州VIP一组", "region": "广东", "supervisor_name": "周敏"},
            ),
            ("/managers", {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}),
            ("/customers", customer(REPLIER, "王建国", "male")),
            ("/customers", customer(OTHER, "陈丽", "female")),
        ):
            response = await profile.post(path, json=body)
            assert response.status_code == 201, response.text
        await world.events()
        yield world


async def send_everything(
    world: World,
    dispatcher: Dispatcher,
    resources: Resources,
    care_settings: CareSettings,
    *,
    automatic_care: bool = False,
) -> list[uuid.UUID]:
    """Every kind of send care makes, dispatched: a marketing campaign, an urgent alert for
    the region, a complaint's service message and, with ``automatic_care``, the day's
    automatic care (birthday greetings). Returns the campaigns it made."""
    author = {"Authorization": f"Bearer {world.token('supervisor', user='S1', team='T1')}"}
    created = await world.care.post(
        "/campaigns",
        json={
            "name": "春季回馈",
            "category": "marketing",
            "template": "{honorific}您好，春季流量包限时五折。",
        },
        headers=author,
    )
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    assert (await world.care.post(f"/campaigns/{campaign}/preview", headers=author)).is_success
    approved = await world.care.post(f"/campaigns/{campaign}/approve")
    assert approved.status_code == 200, approved.text
    alert = await world.care.post(
        "/alerts",
        json={
            "name": "寒潮预警",
            "regions": ["广东"],
            "template": "寒潮来袭，请注意保暖。",
            "urgent": True,
        },
    )
    assert alert.status_code == 201, alert.text
    async with world.engine.connect() as conn:
        before = set((await conn.execute(text("SELECT id FROM care.campaign"))).scalars())
    async with resources.session() as session:
        await automatic.service_message(
            session,
            plan_key=f"complaint:{uuid.uuid4()}:ack",
            name="投诉受理",
            template="{honorific}您好，您的投诉已受理。",
            msisdn=REPLIER,
        )
        if automatic_care:
            await automatic.create_rule(
                session,
                RuleCreate(
                    kind=RuleKind.birthday,
                    name="生日祝福",
                    category=Category.greeting,
                    template="{honorific}，今天是您的生日，祝您生日快乐！",
                ),
            )
            planned = await automatic.plan_day(session, birthday(), care_settings)
            assert (planned.campaigns_created, planned.failed_rules) == (1, [])
    await dispatcher.redrive()  # starts the planned campaigns that are due
    async with world.engine.connect() as conn:
        made = [
            c
            for c in (await conn.execute(text("SELECT id FROM care.campaign"))).scalars()
            if c not in before
        ]
    made += [uuid.UUID(campaign), uuid.UUID(alert.json()["id"])]
    for campaign_id in made:
        await dispatcher.run(campaign_id, seconds=30)
    return made


async def test_an_opt_out_reply_through_the_sandbox_stops_every_later_send(
    world: World, dispatcher: Dispatcher, resources: Resources, care_settings: CareSettings
) -> None:
    # What care sends before the reply reaches both customers.
    await send_everything(world, dispatcher, resources, care_settings)
    assert sorted(set(await sent_phones(world.sandbox))) == [REPLIER, OTHER]
    texts = [m["text"] for m in (await world.sandbox.get("/messages")).json()]
    assert "王先生您好，春季流量包限时五折。拒收请回复R" in texts  # marketing: the hint
    assert "寒潮来袭，请注意保暖。" in texts  # an alert: none
    seen = len(texts)

    # The customer answers R (typed full width, as many handsets do).
    await world.reply("Ｒ")
    [reply] = await world.replies()
    assert (reply["msisdn"], reply["opt_out_keyword"], reply["settled_at"]) == (REPLIER, "R", None)

    # Care sends them nothing from now on, before profile has even heard of it.
    assert not await world.copy_opted_out()
    author = {"Authorization": f"Bearer {world.token('supervisor', user='S1', team='T1')}"}
    draft = await world.care.post(
        "/campaigns", json={"name": "预览", "template": "{honorific}您好"}, headers=author
    )
    preview = await world.care.post(f"/campaigns/{draft.json()['id']}/preview", headers=author)
    assert (preview.json()["suppressed"], preview.json()["will_send"]) == ({"opt_out": 1}, 1)
    made = await send_everything(world, dispatcher, resources, care_settings, automatic_care=True)
    later = (await world.sandbox.get("/messages", params={"offset": seen})).json()
    assert {m["phone"] for m in later} == {OTHER}
    assert any("生日快乐" in m["text"] for m in later), "automatic care went out to the other"
    for campaign_id in made:
        mine = (await states(world.engine, campaign_id)).get(REPLIER)
        assert mine in (None, "suppressed"), (campaign_id, mine)
    async with world.engine.connect() as conn:
        reasons = set(
            (
                await conn.execute(
                    text(
                        "SELECT reason FROM care.recipient "
                        "WHERE msisdn = :m AND state = 'suppressed'"
                    ),
                    {"m": REPLIER},
                )
            ).scalars()
        )
    assert reasons == {"opt_out"}

    # Profile records the opt-out from care's event, and its update reaches care's copy.
    [event] = await world.outbox("care.opt_out_requested")
    assert (event["msisdn"], event["keyword"], event["content"]) == (REPLIER, "R", "Ｒ")
    await world.events()
    archive = await world.archive()
    assert (archive["sms_opt_out"], archive["version"]) == (True, 2)
    assert archive["sms_opt_out_at"] is not None
    contacts = (await world.profile.get(f"/customers/{REPLIER}/contacts")).json()["items"]
    [why] = [c for c in contacts if c["direction"] == "inbound"]
    assert (why["channel"], why["outcome"], why["source"]) == ("sms", "refused", "care")
    assert "退订" in why["note"] and "Ｒ" in why["note"]
    assert await world.copy_opted_out()
    [reply] = await world.replies()
    assert reply["settled_at"] is not None  # the archive's flag decides from here on
    assert (await world.archive(OTHER))["sms_opt_out"] is False

    # And still nothing goes out to them.
    seen += len(later)
    await send_everything(world, dispatcher, resources, care_settings)
    last = (await world.sandbox.get("/messages", params={"offset": seen})).json()
    assert last and {m["phone"] for m in last} == {OTHER}


async def test_the_same_uplink_pushed_twice_changes_nothing_twice(
    world: World, care_settings: CareSettings
) -> None:
    sent = await world.reply("TD")
    again = await world.sandbox.post(f"/replies/{sent['sequence_id']}/push")
    assert again.status_code == 200

    async def pushed_twice() -> bool:
        found = (await world.sandbox.get("/replies")).json()
        return found[0]["pushes"] == 2 and found[0]["accepted"]

    await wait_for(pushed_twice, 10, "the second push")
    # A late copy of care's event (the relay redelivering it) is one effect too.
    direct = await world.care.post(
        "/sms/uplinks/sandbox",
        params={"token": care_settings.uplink_secret.get_secret_value()},
        json=[sent | {"sequence_id": str(sent["sequence_id"])}],  # a string id: the same reply
    )
    assert direct.json() == {
        "received": 0,
        "opt_outs": 0,
        "satisfaction": 0,
        "duplicates": 1,
        "ignored": 0,
    }

    assert len(await world.replies()) == 1
    assert len(await world.outbox("care.opt_out_requested")) == 1
    await world.events()
    await world.events()
    archive = await world.archive()
    assert (archive["sms_opt_out"], archive["version"]) == (True, 2)
    contacts = (await world.profile.get(f"/customers/{REPLIER}/contacts")).json()["items"]
    assert len([c for c in contacts if c["direction"] == "inbound"]) == 1


async def test_a_reply_that_is_not_a_keyword_is_kept_and_changes_nothing(
    world: World, dispatcher: Dispatcher, resources: Resources, care_settings: CareSettings
) -> None:
    await world.reply("我不是R，请问流量包怎么办理？")
    [reply] = await world.replies()
    assert reply["opt_out_keyword"] is None
    assert await world.outbox("care.opt_out_requested") == []
    shown = (await world.care.get("/sms/replies", params={"msisdn": REPLIER})).json()
    assert [r["content"] for r in shown] == ["我不是R，请问流量包怎么办理？"]

    await send_everything(world, dispatcher, resources, care_settings)
    assert REPLIER in await sent_phones(world.sandbox)


async def test_once_profile_has_the_opt_out_an_opt_in_given_to_profile_is_honoured(
    world: World, dispatcher: Dispatcher, resources: Resources, care_settings: CareSettings
) -> None:
    await world.reply("退订")
    await world.events()
    archive = await world.archive()
    assert archive["sms_opt_out"] is True
    # Later the customer asks their manager to receive care messages again.
    changed = await world.profile.patch(
        f"/customers/{REPLIER}", json={"sms_opt_out": False, "version": archive["version"]}
    )
    assert changed.status_code == 200, changed.text
    await world.events()
    assert not await world.copy_opted_out()

    await send_everything(world, dispatcher, resources, care_settings)
    assert REPLIER in await sent_phones(world.sandbox)


async def test_a_reply_from_a_customer_already_opted_out_is_settled_at_once(
    world: World, care_settings: CareSettings
) -> None:
    archive = await world.archive()
    changed = await world.profile.patch(
        f"/customers/{REPLIER}", json={"sms_opt_out": True, "version": archive["version"]}
    )
    assert changed.status_code == 200, changed.text
    await world.events()

    await world.reply("N")
    [reply] = await world.replies()
    assert reply["settled_at"] is not None
    await world.events()
    after = await world.archive()
    assert (after["sms_opt_out"], after["version"]) == (True, archive["version"] + 1)
    contacts = (await world.profile.get(f"/customers/{REPLIER}/contacts")).json()["items"]
    [why] = [c for c in contacts if c["direction"] == "inbound"]
    assert "此前已拒收短信" in why["note"]


async def test_uplinks_need_the_token_and_a_number_not_on_file_is_kept_out_of_sends(
    world: World, care_settings: CareSettings
) -> None:
    body = [
        {
            "phone_number": "13800000009",
            "content": "R",
            "send_time": "2026-12-02 10:00:00",
            "dest_code": "8009",
            "sequence_id": 42,
            "sign_name": "Keepwell",
        }
    ]
    async with httpx.AsyncClient(base_url=world.care_url) as outsider:
        forged = await outsider.post("/sms/uplinks/sandbox", params={"token": "guess"}, json=body)
        bare = await outsider.post("/sms/uplinks/sandbox", json=body)
        malformed = await outsider.post(
            "/sms/uplinks/sandbox",
            params={"token": care_settings.uplink_secret.get_secret_value()},
            json=[{"phone_number": "13800000009"}],
        )
    assert (forged.status_code, bare.status_code) == (401, 401)
    assert (malformed.status_code, malformed.json()["field"]) == (422, "body")
    assert await world.replies() == []

    taken = await world.care.post(
        "/sms/uplinks/sandbox",
        params={"token": care_settings.uplink_secret.get_secret_value()},
        json=body,
    )
    assert taken.json() == {
        "received": 1,
        "opt_outs": 1,
        "satisfaction": 0,
        "duplicates": 0,
        "ignored": 0,
    }
    await world.events()  # profile has no such customer: it logs and moves on
    assert [r["msisdn"] for r in await world.replies()] == ["13800000009"]


FIX = {"description": "修复基站", "owner": "net-ops", "due_on": "2999-01-01"}


async def closed_complaint(world: World) -> dict[str, Any]:
    """A complaint of the replier's, taken through the four steps and closed."""
    opened = await world.complaint.post(
        "/complaints",
        json={
            "msisdn": REPLIER,
            "channel": "hotline",
            "category": "network_signal",
            "description": "家里信号差，经常断线。",
            "needs": ["be_heard", "fix_now"],
        },
    )
    assert opened.status_code == 201, opened.text
    ticket: dict[str, Any] = opened.json()
    for action, body in (
        ("acknowledge", {"emotion": "客户着急，先致歉并倾听"}),
        ("clarify", {"findings": "基站故障", "responsibility": "ours"}),
        ("agree", {"agreed": ["三天内修复基站"], "actions": [FIX]}),
        ("track", None),
        ("close", {"satisfaction": 3}),
    ):
        if body is None:  # every agreed action done
            detail = (await world.complaint.get(f"/complaints/{ticket['id']}")).json()
            body = {"actions": [{"action_id": a["id"], "done": True} for a in detail["actions"]]}
        done = await world.complaint.post(
            f"/complaints/{ticket['id']}/{action}", json={"version": ticket["version"], **body}
        )
        assert done.status_code == 200, (action, done.text)
        ticket = done.json()
    return ticket


async def test_a_score_replied_to_the_follow_up_records_the_customers_satisfaction(
    world: World,
    dispatcher: Dispatcher,
    care_settings: CareSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARE_COMPLAINT_FOLLOW_UP_HOURS", "0")  # the follow-up goes at once
    get_care_settings.cache_clear()
    # A score from a customer no follow-up asked is only a reply.
    await world.reply("5", phone=OTHER)
    ticket = await closed_complaint(world)
    await world.events()  # complaint.closed reaches care: the closure SMS and the follow-up
    await dispatcher.redrive()
    async with world.engine.connect() as conn:
        campaigns = (
            await conn.execute(
                text("SELECT id, plan_key FROM care.campaign WHERE plan_key LIKE 'complaint:%'")
            )
        ).all()
    for campaign_id, _ in campaigns:
        await dispatcher.run(campaign_id, seconds=30)
    follow_up = next(m for m in await sent_texts(world) if "满意" in m)
    assert "请回复1-5分" in follow_up and "拒收" not in follow_up  # a service message

    # The customer answers 4 (full width, with 分), and the ticket has it.
    await world.reply("４分")
    await world.events()
    detail = (await world.complaint.get(f"/complaints/{ticket['id']}")).json()
    assert (detail["state"], detail["satisfaction"]) == ("closed", 4)
    answer = detail["steps"][-1]
    assert (answer["step"], answer["by"]) == ("satisfaction", "system:sms-reply")
    [event] = await world.outbox("care.satisfaction_replied")
    assert (event["complaint_id"], event["satisfaction"]) == (str(ticket["id"]), 4)
    # Not an opt-out, and the archive logs the answer as an inbound SMS contact.
    assert await world.outbox("care.opt_out_requested") == []
    contacts = (await world.profile.get(f"/customers/{REPLIER}/contacts")).json()["items"]
    assert any(
        c["direction"] == "inbound" and c["channel"] == "sms" and c["source"] == "complaint"
        for c in contacts
    ), contacts

    # An unhappy score needs a reason: the reply itself is kept as one.
    await world.reply("1")
    await world.events()
    detail = (await world.complaint.get(f"/complaints/{ticket['id']}")).json()
    assert (detail["satisfaction"], detail["satisfaction_reason"]) == (1, "短信回复：1")


async def sent_texts(world: World) -> list[str]:
    return [m["text"] for m in (await world.sandbox.get("/messages")).json()]
