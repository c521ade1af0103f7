"""What a manager and a supervisor see of a campaign over a day (issue #19): report rates,
the control group of a small audience, templates that read well, and the small things."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from care_support import SUPERVISOR, TOMORROW, Clock, SeedCustomers, recipients, snapshot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import automatic, service
from services.care.app import create_app
from services.care.config import CareSettings
from services.care.dispatch import Dispatcher
from services.care.providers.base import DeliveryReceipt
from services.care.rendering import render
from services.care.schemas import CampaignCreate
from services.kit import clock
from services.kit.app import Resources


async def _set_states(engine: AsyncEngine, campaign_id: uuid.UUID, states: list[str]) -> None:
    async with engine.begin() as conn:
        ids = (
            await conn.execute(
                text("SELECT id FROM care.recipient WHERE campaign_id = :c ORDER BY id"),
                {"c": campaign_id},
            )
        ).scalars()
        for rid, state in zip(ids, states, strict=True):
            await conn.execute(
                text("UPDATE care.recipient SET state = :s WHERE id = :i"), {"s": state, "i": rid}
            )


async def test_delivery_rate_counts_failures_and_each_rate_is_documented(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    await seed_customers(*(snapshot(f"1380000000{i}") for i in range(8)))
    campaign_id = await start_campaign()
    await _set_states(engine, campaign_id, ["delivered"] * 5 + ["failed"] * 2 + ["suppressed"])
    async with resources.session() as session:
        report = await service.report(session, campaign_id)
    async with app_client(create_app()) as client:
        openapi = (await client.get("/openapi.json")).json()

    assert report.attempted == 7
    assert report.delivery_rate == round(5 / 7, 4)
    assert report.failure_rate == round(2 / 7, 4)
    assert report.audience_delivered_rate == round(5 / 8, 4)
    fields = openapi["components"]["schemas"]["CampaignReport"]["properties"]
    assert "delivered / attempted" in fields["delivery_rate"]["description"]
    assert "reach_rate" not in fields


async def test_a_small_audience_holds_out_at_most_the_share_asked(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    await seed_customers(*(snapshot(f"1380000000{i}") for i in range(4)))
    async with resources.session() as session:
        half = await service.create_campaign(
            session, CampaignCreate(name="a", template="您好", control_percent=50), SUPERVISOR
        )
        tenth = await service.create_campaign(
            session, CampaignCreate(name="b", template="您好", control_percent=10), SUPERVISOR
        )
        previews = [await service.preview(session, c.id, care_settings) for c in (half, tenth)]
        for c in (half, tenth):
            await service.approve(session, c.id, SUPERVISOR, care_settings)

    assert [p.control_group for p in previews] == [2, 0]
    held = [
        [r.state for r in (await recipients(engine, c.id)).values()].count("control")
        for c in (half, tenth)
    ]
    assert held == [2, 0]


async def test_default_templates_say_the_surname_once_and_the_preview_flags_a_repeat(
    resources: Resources, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    customer = snapshot("13800000001", name="马东", gender="male", honorific="马先生")
    await seed_customers(customer)
    assert all("{name}{honorific}" not in str(r["template"]) for r in automatic.DEFAULT_RULES)
    birthday = next(r for r in automatic.DEFAULT_RULES if r["kind"] == "birthday")
    text_ = render(str(birthday["template"]), customer.model_dump() | {"manager_name": "李经理"})
    assert text_.startswith("马先生，今天是您的生日")
    # An older copy without the honorific reads the same way.
    assert render("{honorific}您好", {"name": "马东", "gender": "male"}) == "马先生您好"

    async with resources.session() as session:
        repeated = await service.create_campaign(
            session, CampaignCreate(name="a", template="{name}{honorific}您好"), SUPERVISOR
        )
        good = await service.create_campaign(
            session, CampaignCreate(name="b", template="{honorific}您好"), SUPERVISOR
        )
        flagged = await service.preview(session, repeated.id, care_settings)
        clean = await service.preview(session, good.id, care_settings)
    assert len(flagged.warnings) == 1 and "马东马先生" in flagged.warnings[0]
    assert clean.warnings == []


async def test_approving_a_completed_campaign_names_its_state(
    app_client, seed_customers: SeedCustomers, start_campaign, engine: AsyncEngine
) -> None:
    await seed_customers(snapshot("13800000001"))
    campaign_id = await start_campaign()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE care.campaign SET status = 'completed' WHERE id = :c"), {"c": campaign_id}
        )
    async with app_client(create_app(), role="admin", user="a1") as client:
        response = await client.post(f"/campaigns/{campaign_id}/approve")
    assert response.status_code == 409
    assert "completed" in response.json()["message"]
    assert "预览" not in response.json()["message"]


async def test_a_delivery_is_never_recorded_before_its_send(
    resources: Resources,
    seed_customers: SeedCustomers,
    start_campaign,
    dispatcher: Dispatcher,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001"))
    campaign_id = await start_campaign()
    await dispatcher.run(campaign_id, seconds=30)
    row = (await recipients(engine, campaign_id))["13800000001"]
    assert row.state == "sent"
    async with resources.session() as session:
        applied = await service.apply_receipts(
            session,
            [
                DeliveryReceipt(
                    provider_message_id=row.provider_message_id,
                    out_id=row.idempotency_key,
                    phone=row.msisdn,
                    delivered=True,
                    reported_at=row.sent_at - timedelta(minutes=3),  # the provider's clock
                )
            ],
        )
        await session.commit()
    assert applied == 1
    after = (await recipients(engine, campaign_id))["13800000001"]
    assert after.state == "delivered"
    assert after.delivered_at >= after.sent_at


async def test_resuming_a_paused_scheduled_campaign_waits_for_its_send_time(
    app_client, seed_customers: SeedCustomers, start_campaign
) -> None:
    await seed_customers(snapshot("13800000001"))
    campaign_id = await start_campaign(send_at=clock.now() + timedelta(days=2))
    async with app_client(create_app(), role="operator", user="op1") as client:
        paused = await client.post(f"/campaigns/{campaign_id}/pause")
        resumed = await client.post(f"/campaigns/{campaign_id}/resume")
    assert paused.json()["status"] == "paused"
    assert resumed.json()["status"] == "approved"


async def test_planning_a_day_takes_a_date_and_a_repeat_says_it_was_already_planned(
    app_client, seed_customers: SeedCustomers, care_settings: CareSettings
) -> None:
    day = clock.today() + timedelta(days=1)
    await seed_customers(snapshot("13800000001", birthday=day.replace(year=1980)))
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        await client.post(
            "/rules", json={"kind": "birthday", "name": "生日", "template": "{honorific}生日快乐"}
        )
        first = await client.post(f"/plan/{day}")
        again = await client.post(f"/plan/{day}")
        instant = await client.post(f"/plan/{day}T10:30:00")
        openapi = (await client.get("/openapi.json")).json()

    assert first.json()["campaigns_created"] == 1
    assert first.json()["recipients_added"] == 1
    assert again.json()["campaigns_created"] == 0
    assert again.json()["campaigns_already_planned"] == 1
    assert again.json()["recipients_added"] == 0
    assert instant.status_code == 422
    parameter = openapi["paths"]["/plan/{day}"]["post"]["parameters"][0]
    assert parameter["schema"]["format"] == "date"


async def test_a_sandbox_phone_set_to_transient_fails_transiently(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
    clock: Clock,
) -> None:
    await seed_customers(snapshot("13800000001"))
    await sandbox.post("/control", json={"fail_phones": {"13800000001": "transient"}})
    campaign_id = await start_campaign()
    await dispatcher.run(campaign_id, seconds=30)
    row = (await recipients(engine, campaign_id))["13800000001"]
    assert (row.state, row.error_code, row.attempts) == ("queued", "sandbox.TRANSIENT", 1)
    assert row.due_at > TOMORROW
