"""The campaign lifecycle over the care API: roles, preview, approval, pause/resume/cancel,
alerts, errors that name the field, and delivery receipts from the sandbox over HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest
from care_support import SeedCustomers, snapshot, states, wait_for
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import service
from services.care.app import create_app
from services.care.config import CareSettings, get_care_settings
from services.care.dispatch import Dispatcher
from services.kit.app import Resources
from services.kit.testing import serve

TEMPLATE = "{honorific}您好，您的会员编号{member_no}，{manager_name}为您服务。"


async def create(client: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    body = {"name": "冬季关怀", "template": TEMPLATE, **fields}
    response = await client.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_preview_counts_the_audience_and_shows_what_cannot_be_rendered(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    await seed_customers(
        snapshot("13800000001", custom={"member_no": "A001"}),
        snapshot("13800000002"),  # no member_no
        snapshot("13800000003", sms_opt_out=True),
        snapshot("13800000004", tier="silver"),
    )
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        campaign = await create(client, audience={"tiers": ["gold"]})
        response = await client.post(f"/campaigns/{campaign['id']}/preview")

    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["audience"] == 3
    assert preview["suppressed"] == {"opt_out": 1, "render_error": 1}
    assert preview["will_send"] == 1
    assert preview["render_errors"] == 1
    samples = {s["msisdn"]: s for s in preview["samples"]}
    assert (
        samples["13800000001"]["text"]
        == "张先生您好，您的会员编号A001，李经理为您服务。拒收请回复R"
    )
    assert (samples["13800000001"]["length"], samples["13800000001"]["segments"]) == (31, 1)
    assert samples["13800000002"]["text"] is None
    assert "member_no" in samples["13800000002"]["error"]


async def test_only_a_supervisor_approves_and_only_after_a_preview(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    await seed_customers(snapshot("13800000001"))
    async with app_client(create_app(), role="manager", user="m1", team="t1") as manager:
        campaign = await create(manager, template="{name}您好")
        refused = await manager.post(f"/campaigns/{campaign['id']}/approve")
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as supervisor:
        too_early = await supervisor.post(f"/campaigns/{campaign['id']}/approve")
        await supervisor.post(f"/campaigns/{campaign['id']}/preview")
        approved = await supervisor.post(f"/campaigns/{campaign['id']}/approve")

    assert refused.status_code == 403
    assert (too_early.status_code, too_early.json()["code"]) == (409, "invalid_transition")
    assert approved.status_code == 200
    assert approved.json()["status"] == "dispatching"
    assert approved.json()["approved_by"] == "s1"


async def test_pause_resume_and_cancel_move_the_campaign_and_stop_its_recipients(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings, engine: AsyncEngine
) -> None:
    await seed_customers(snapshot("13800000001"), snapshot("13800000002"))
    async with (
        app_client(create_app(), role="supervisor", user="s1", team="t1") as client,
        app_client(create_app(), role="supervisor", user="s2", team="t1") as approver,
    ):
        campaign = await create(client, template="{name}您好")
        cid = campaign["id"]
        await client.post(f"/campaigns/{cid}/preview")
        await approver.post(f"/campaigns/{cid}/approve")
        paused = await client.post(f"/campaigns/{cid}/pause", json={"reason": "内容待复核"})
        paused_again = await client.post(f"/campaigns/{cid}/pause")
        resumed = await client.post(f"/campaigns/{cid}/resume")
        cancelled = await client.post(f"/campaigns/{cid}/cancel")
        report = await client.get(f"/campaigns/{cid}/report")

    assert (paused.json()["status"], paused.json()["pause_reason"]) == ("paused", "内容待复核")
    assert paused_again.status_code == 409
    assert resumed.json()["status"] == "dispatching"
    assert cancelled.json()["status"] == "cancelled"
    assert set((await states(engine, uuid.UUID(cid))).values()) == {"cancelled"}
    assert report.json()["states"] == {"cancelled": 2}


async def test_bad_input_names_the_field_and_changes_nothing(
    app_client, care_settings: CareSettings, engine: AsyncEngine
) -> None:
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        unsafe = await client.post(
            "/campaigns", json={"name": "x", "template": "{name.__class__}您好"}
        )
        naive = await client.post(
            "/campaigns",
            json={"name": "x", "template": "{name}", "send_at": "2026-12-01T10:00:00"},
        )
        unknown_filter = await client.post(
            "/campaigns", json={"name": "x", "template": "{name}", "audience": {"colour": "red"}}
        )

    assert (unsafe.status_code, unsafe.json()["field"]) == (422, "template")
    assert (naive.status_code, naive.json()["field"]) == (422, "send_at")
    assert (unknown_filter.status_code, unknown_filter.json()["field"]) == (
        422,
        "audience.colour",
    )
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM care.campaign"))).scalar_one() == 0


async def test_an_alert_goes_to_every_customer_in_the_region_at_once(
    app_client,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
) -> None:
    await seed_customers(
        snapshot("13800000001", region="广东"),
        snapshot("13800000002", region="广东", tier="none"),
        snapshot("13800000003", region="湖南"),
    )
    async with app_client(create_app(), role="operator") as client:
        response = await client.post(
            "/alerts",
            json={
                "name": "台风预警",
                "regions": ["广东"],
                "template": "{name}{honorific}：台风今夜登陆，请减少外出。",
            },
        )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "dispatching"

    await dispatcher.run(uuid.UUID(response.json()["id"]), seconds=30)
    phones = sorted(m["phone"] for m in (await sandbox.get("/messages")).json())
    assert phones == ["13800000001", "13800000002"]


async def test_delivery_receipts_mark_recipients_delivered_and_feed_the_contact_log(
    app_client,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    engine: AsyncEngine,
) -> None:
    await seed_customers(
        snapshot("13800000001", manager_id="m1"),
        snapshot("13800000002", manager_id="m1"),
        snapshot("13800000003", manager_id="m2"),
    )
    async with serve(create_app()) as care_url:
        configured = await sandbox.post(
            "/control",
            json={
                "receipt_url": f"{care_url}/sms/receipts/sandbox",
                "receipt_token": care_settings.receipt_token.get_secret_value(),
            },
        )
        assert configured.status_code == 200
        async with (
            app_client(create_app(), role="supervisor", user="s1", team="t1") as client,
            app_client(create_app(), role="supervisor", user="s2", team="t1") as approver,
        ):
            campaign = await create(client, template="{name}您好", audience={"manager_ids": ["m1"]})
            cid = uuid.UUID(str(campaign["id"]))
            await client.post(f"/campaigns/{cid}/preview")
            await approver.post(f"/campaigns/{cid}/approve")
            await dispatcher.run(cid, seconds=30)

            async def all_delivered() -> bool:
                return set((await states(engine, cid)).values()) == {"delivered"}

            await wait_for(all_delivered, 20, "every receipt")

            report = (await client.get(f"/campaigns/{cid}/report")).json()
        async with httpx.AsyncClient() as outsider:
            wrong_token = await outsider.post(
                f"{care_url}/sms/receipts/sandbox", params={"token": "guess"}, json=[]
            )

    assert report["delivery_rate"] == 1.0
    assert report["audience_delivered_rate"] == 1.0
    assert wrong_token.status_code == 401
    async with engine.connect() as conn:
        events = (
            (
                await conn.execute(
                    text("SELECT payload FROM care.outbox WHERE type = 'care.message_delivered'")
                )
            )
            .scalars()
            .all()
        )
    contacts = sorted((e["contact"]["msisdn"], e["contact"]["outcome"]) for e in events)
    assert contacts == [("13800000001", "delivered"), ("13800000002", "delivered")]
    assert {e["contact"]["channel"] for e in events} == {"sms"}


async def test_aliyun_receipts_are_authenticated_by_the_url_token_and_acknowledged(
    app_client,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    dispatcher: Dispatcher,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARE_ALIYUN_ACCESS_KEY_ID", "LTAI-test")
    monkeypatch.setenv("CARE_ALIYUN_SIGN_NAME", "客户关怀")
    get_care_settings.cache_clear()
    await seed_customers(snapshot("13800000001"))
    async with (
        app_client(create_app(), role="supervisor", user="s1", team="t1") as client,
        app_client(create_app(), role="supervisor", user="s2", team="t1") as approver,
    ):
        campaign = await create(client, template="{name}您好")
        cid = uuid.UUID(str(campaign["id"]))
        await client.post(f"/campaigns/{cid}/preview")
        await approver.post(f"/campaigns/{cid}/approve")
        await dispatcher.run(cid, seconds=30)
        async with engine.connect() as conn:
            key = (
                await conn.execute(
                    text("SELECT idempotency_key FROM care.recipient WHERE campaign_id = :c"),
                    {"c": cid},
                )
            ).scalar_one()
        report = [
            {
                "phone_number": "13800000001",
                "success": False,
                "biz_id": "932702304080415357^0",
                "out_id": key,
                "send_time": "2026-11-23 10:00:00",
                "report_time": "2026-11-23 10:00:05",
                "err_code": "MK:0001",
                "err_msg": "用户关机",
                "sms_size": "1",
            }
        ]
        token = care_settings.receipt_token.get_secret_value()
        refused = await client.post("/sms/receipts/aliyun", json=report)
        accepted = await client.post("/sms/receipts/aliyun", params={"token": token}, json=report)

    assert refused.status_code == 401
    assert accepted.json() == {"code": 0, "msg": "接收成功"}
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT state, error_code FROM care.recipient WHERE campaign_id = :c"),
                {"c": cid},
            )
        ).one()
    assert tuple(row) == ("failed", "MK:0001")


async def test_on_call_sees_which_campaigns_are_stalled_paused_or_moving(
    app_client,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    dispatcher: Dispatcher,
    start_campaign,
    resources: Resources,
) -> None:
    await seed_customers(snapshot("13800000001"), snapshot("13800000002"))
    idle = await start_campaign()  # dispatching, but no worker takes a batch
    paused = await start_campaign()
    async with resources.session() as session:
        await service.pause(session, paused, "短信账户余额不足")

    async with app_client(create_app(), role="operator") as client:
        just_approved = (await client.get("/dispatch")).json()
        async with resources.session() as session:  # ten minutes pass without a worker
            await session.execute(
                text(
                    "UPDATE care.campaign SET updated_at = now() - interval '10 minutes' "
                    "WHERE id = :c"
                ),
                {"c": idle},
            )
        before = (await client.get("/dispatch")).json()
        await dispatcher.run(idle, seconds=30)
        after = (await client.get("/dispatch")).json()
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        refused = await client.get("/dispatch")

    assert [r["stalled"] for r in just_approved["campaigns"]] == [False, False]
    rows = {r["campaign_id"]: r for r in before["campaigns"]}
    assert (rows[str(idle)]["due"], rows[str(idle)]["stalled"]) == (2, True)
    assert rows[str(paused)]["status"] == "paused"
    assert rows[str(paused)]["pause_reason"] == "短信账户余额不足"
    assert rows[str(paused)]["stalled"] is False
    assert before["provider"] == "sandbox"
    assert [r["campaign_id"] for r in after["campaigns"]] == [str(paused)]  # idle completed
    assert refused.status_code == 403


async def test_an_alert_posted_again_with_its_idempotency_key_goes_out_once(
    app_client, seed_customers: SeedCustomers, engine: AsyncEngine
) -> None:
    await seed_customers(snapshot("13800000001", region="广东"))
    alert = {
        "name": "台风预警",
        "regions": ["广东"],
        "template": "{name}{honorific}：台风今夜登陆。",
    }
    headers = {"Idempotency-Key": "typhoon-2026-12-02"}
    async with app_client(create_app(), role="operator") as client:
        first = await client.post("/alerts", json=alert, headers=headers)
        again = await client.post("/alerts", json=alert, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM care.campaign")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM care.recipient")) == 1
