"""Dispatch on real PostgreSQL and Redis, with the sandbox provider over HTTP: send-time
rules, retries, pause/resume and concurrent jobs never sending anything twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from care_support import (
    SUPERVISOR,
    TOMORROW,
    Clock,
    SeedCustomers,
    campaign_status,
    numbers,
    recipients,
    sent_phones,
    snapshot,
    states,
    wait_for,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import service
from services.care.dispatch import Dispatcher, build_provider
from services.care.models import Category
from services.care.schemas import AlertCreate, Audience, CampaignCreate
from services.kit.app import Resources


async def test_a_campaign_reaches_every_customer_once_with_a_personal_message(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    await seed_customers(
        snapshot("13800000001", name="王芳", gender="female"),
        snapshot("13800000002", name="刘强", gender="male"),
    )
    campaign_id = await start_campaign()

    assert await dispatcher.run(campaign_id, seconds=30) == "done"

    sent = (await sandbox.get("/messages")).json()
    assert sorted(m["text"] for m in sent) == [
        "刘先生您好，李经理祝您生活愉快。拒收请回复R",
        "王女士您好，李经理祝您生活愉快。拒收请回复R",
    ]
    assert set((await states(engine, campaign_id)).values()) == {"sent"}
    assert await campaign_status(engine, campaign_id) == "completed"


async def test_opted_out_dnd_taboo_and_churned_customers_get_nothing_and_say_why(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    await seed_customers(
        snapshot("13800000001"),
        snapshot("13800000002", sms_opt_out=True),
        snapshot("13800000003", do_not_disturb=True),
        snapshot("13800000004", taboos=["鲜花"]),
    )
    campaign_id = await start_campaign(taboo_tags=["鲜花"])
    async with engine.begin() as conn:  # churned after approval: rules apply at send time
        await conn.execute(
            text("UPDATE care.customer SET status = 'churned' WHERE msisdn = '13800000001'")
        )

    await dispatcher.run(campaign_id, seconds=30)

    assert await sent_phones(sandbox) == []
    rows = await recipients(engine, campaign_id)
    assert {m: (r.state, r.reason) for m, r in rows.items()} == {
        "13800000001": ("suppressed", "churned"),
        "13800000002": ("suppressed", "opt_out"),
        "13800000003": ("suppressed", "do_not_disturb"),
        "13800000004": ("suppressed", "taboo"),
    }


async def test_quiet_hours_hold_the_message_and_send_it_when_they_end(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
    clock: Clock,
) -> None:
    await seed_customers(snapshot("13800000001"), snapshot("13800000002", time_zone="Asia/Urumqi"))
    clock.now = TOMORROW.replace(hour=14, minute=30)  # 22:30 Beijing, 20:30 Urumqi
    campaign_id = await start_campaign()

    assert await dispatcher.run(campaign_id, seconds=30) == "idle"

    assert await sent_phones(sandbox) == ["13800000002"]
    held = (await recipients(engine, campaign_id))["13800000001"]
    assert (held.state, held.reason) == ("held", "quiet_hours")
    ends = TOMORROW + timedelta(days=1)  # 08:00 in Beijing
    assert held.due_at == ends

    clock.now = ends - timedelta(minutes=1)  # 07:59: still quiet
    assert await dispatcher.run(campaign_id, seconds=30) == "idle"
    assert len(await sent_phones(sandbox)) == 1

    clock.now = ends + timedelta(seconds=1)
    assert await dispatcher.run(campaign_id, seconds=30) == "done"
    assert sorted(await sent_phones(sandbox)) == ["13800000001", "13800000002"]


async def test_frequency_cap_suppresses_the_fourth_message_in_a_week_but_not_greetings(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001"))
    for _ in range(3):
        await dispatcher.run(await start_campaign(category=Category.marketing), seconds=30)
    fourth = await start_campaign(category=Category.marketing)
    await dispatcher.run(fourth, seconds=30)
    greeting = await start_campaign(category=Category.greeting, occasion="birthday:2026")
    await dispatcher.run(greeting, seconds=30)

    assert len(await sent_phones(sandbox)) == 4
    assert (await recipients(engine, fourth))["13800000001"].reason == "frequency_cap"
    assert (await states(engine, greeting)) == {"13800000001": "sent"}


async def test_the_same_greeting_is_never_sent_twice_for_one_occasion(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001"))
    first = await start_campaign(category=Category.greeting, occasion="spring_festival:2027")
    await dispatcher.run(first, seconds=30)
    second = await start_campaign(category=Category.greeting, occasion="spring_festival:2027")
    await dispatcher.run(second, seconds=30)

    assert await sent_phones(sandbox) == ["13800000001"]
    assert (await recipients(engine, second))["13800000001"].reason == "duplicate_greeting"


async def test_pause_stops_sending_and_resume_continues_without_resending(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    resources: Resources,
    care_settings,
    engine: AsyncEngine,
) -> None:
    phones = numbers(120)
    await seed_customers(*(snapshot(p) for p in phones))
    campaign_id = await start_campaign()
    await dispatcher.process_batch(campaign_id)
    await dispatcher.process_batch(campaign_id)
    async with resources.session() as session:
        await service.pause(session, campaign_id, "客户投诉，先暂停")

    assert await dispatcher.run(campaign_id, seconds=30) == "stopped"
    assert len(await sent_phones(sandbox)) == 100  # two batches of 50, nothing after pause

    async with resources.session() as session:
        await service.resume(session, campaign_id, care_settings)
    assert await dispatcher.run(campaign_id, seconds=30) == "done"

    stats = (await sandbox.get("/stats")).json()
    assert (stats["unique"], stats["duplicates"]) == (120, 0)
    assert sorted(await sent_phones(sandbox)) == phones


async def test_concurrent_jobs_on_one_campaign_send_each_message_once(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
) -> None:
    phones = numbers(400)
    await seed_customers(*(snapshot(p) for p in phones))
    campaign_id = await start_campaign()

    await asyncio.gather(*(dispatcher.run(campaign_id, seconds=30) for _ in range(6)))

    assert Counter(await sent_phones(sandbox)) == Counter(phones)


async def test_transient_errors_retry_with_backoff_and_permanent_ones_fail_with_the_code(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
    clock: Clock,
) -> None:
    await seed_customers(snapshot("13800000001"), snapshot("13800000002"))
    await sandbox.post(
        "/control",
        json={
            "fail_mode": "transient",
            "fail_phones": {"13800000002": "isv.MOBILE_NUMBER_ILLEGAL"},
        },
    )
    campaign_id = await start_campaign()

    assert await dispatcher.run(campaign_id, seconds=30) == "idle"
    rows = await recipients(engine, campaign_id)
    assert (rows["13800000002"].state, rows["13800000002"].error_code) == (
        "failed",
        "isv.MOBILE_NUMBER_ILLEGAL",
    )
    retry = rows["13800000001"]
    assert (retry.state, retry.attempts, retry.error_code) == ("queued", 1, "sandbox.TRANSIENT")
    assert retry.due_at > datetime.now(UTC)

    await sandbox.post("/control", json={"fail_mode": "none"})
    clock.now = retry.due_at + timedelta(seconds=1)
    assert await dispatcher.run(campaign_id, seconds=30) == "done"
    assert await sent_phones(sandbox) == ["13800000001"]
    assert (await states(engine, campaign_id))["13800000001"] == "sent"


async def test_control_group_is_held_out_and_recorded(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    phones = numbers(200)
    await seed_customers(*(snapshot(p) for p in phones))
    campaign_id = await start_campaign(control_percent=20)
    await dispatcher.run(campaign_id, seconds=30)

    found = await states(engine, campaign_id)
    control = [m for m, s in found.items() if s == "control"]
    assert len(control) == 40  # 20% of 200, never more
    assert sorted(await sent_phones(sandbox)) == sorted(m for m, s in found.items() if s == "sent")
    assert not set(control) & set(await sent_phones(sandbox))


async def test_a_vanished_worker_leaves_nothing_lost_and_nothing_resent(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
) -> None:
    """Rows a dead worker left 'sending': the ones the provider accepted become sent, the
    others are sent once by the re-driver's next run."""
    phones = numbers(100)
    await seed_customers(*(snapshot(p) for p in phones))
    campaign_id = await start_campaign()
    await dispatcher.process_batch(campaign_id)  # 50 sent and recorded
    # A worker claims the next 50, sends 25 of them, then dies before recording anything.
    async with engine.begin() as conn:
        claimed = (
            await conn.execute(
                text(
                    "UPDATE care.recipient SET state = 'sending', sent_at = now() - interval "
                    "'61 seconds', lease_until = now() - interval '1 second', "
                    "provider = 'sandbox', attempts = 1 "
                    "WHERE campaign_id = :c AND state = 'queued' RETURNING idempotency_key, msisdn"
                ),
                {"c": campaign_id},
            )
        ).all()
    await sandbox.post(
        "/send",
        json={
            "messages": [
                {"idempotency_key": k, "phone": m, "text": "已发出"} for k, m in claimed[:25]
            ]
        },
    )

    result = await dispatcher.redrive()
    assert result["reconciled"] == 50
    assert await dispatcher.run(campaign_id, seconds=30) == "done"

    assert Counter(await sent_phones(sandbox)) == Counter(phones)
    assert set((await states(engine, campaign_id)).values()) == {"sent"}


async def test_list_audience_suppresses_unknown_and_invalid_numbers(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    resources: Resources,
    care_settings,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001"))

    async with resources.session() as session:
        campaign = await service.create_campaign(
            session,
            CampaignCreate(name="名单", template="{name}您好", audience=Audience(source="list")),
            SUPERVISOR,
        )
        added = await service.add_to_list(
            session, campaign.id, ["13800000001", "13900000009", "12345"]
        )
        preview = await service.preview(session, campaign.id, care_settings)
        await service.approve(session, campaign.id, SUPERVISOR, care_settings)
    assert [e.value for e in added.rejected] == ["12345"]
    assert preview.audience == 2
    assert preview.suppressed == {"unknown_customer": 1}

    await dispatcher.run(campaign.id, seconds=30)
    assert await sent_phones(sandbox) == ["13800000001"]
    assert (await states(engine, campaign.id)) == {
        "13800000001": "sent",
        "13900000009": "suppressed",
    }


async def test_a_local_time_schedule_sends_at_that_hour_in_each_recipients_time_zone(
    seed_customers: SeedCustomers, start_campaign, engine: AsyncEngine
) -> None:
    await seed_customers(
        snapshot("13800000001", time_zone="Asia/Shanghai"),
        snapshot("13800000002", time_zone="Asia/Urumqi"),  # UTC+6 in the tz database
    )
    ten_in_beijing = TOMORROW.replace(hour=2)
    campaign_id = await start_campaign(send_at=ten_in_beijing.isoformat(), local_time=True)

    # The re-driver starts it when the first one is due.
    assert await campaign_status(engine, campaign_id) == "approved"
    due = {m: r.due_at for m, r in (await recipients(engine, campaign_id)).items()}
    assert due == {
        "13800000001": ten_in_beijing,
        "13800000002": ten_in_beijing + timedelta(hours=2),
    }


async def test_after_redis_loses_the_queued_jobs_the_re_driver_starts_new_ones(
    dispatcher: Dispatcher, seed_customers: SeedCustomers, start_campaign, resources: Resources
) -> None:
    await seed_customers(snapshot("13800000001"))
    await start_campaign()
    queue = "keepwell:care"
    assert await resources.redis.zcard(queue) > 0  # approval nudged the workers
    await resources.redis.flushdb()  # a Redis restart without persistence

    result = await dispatcher.redrive()

    assert result["nudged"] == 1
    assert await resources.redis.zcard(queue) == dispatcher.care.dispatch_concurrency


async def test_two_campaigns_sending_at_once_never_pass_the_frequency_cap_together(
    resources: Resources,
    care_settings,
    clock: Clock,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
) -> None:
    phones = numbers(150)
    await seed_customers(*(snapshot(p) for p in phones))
    capped = care_settings.model_copy(update={"frequency_cap": 1})
    first = await start_campaign(category=Category.marketing)
    second = await start_campaign(category=Category.marketing)

    def dispatcher() -> Dispatcher:
        provider = build_provider(capped, resources.http)
        return Dispatcher(resources.session, resources.redis, provider, capped, clock)

    await asyncio.gather(*(dispatcher().run(c, seconds=30) for c in (first, second, first, second)))

    assert Counter(await sent_phones(sandbox)) == Counter(phones)
    async with resources.session() as session:
        reasons = await session.execute(
            text(
                "SELECT reason, count(*) FROM care.recipient WHERE state = 'suppressed' "
                "GROUP BY reason"
            )
        )
        assert dict(reasons.all()) == {"frequency_cap": 150}


async def test_alerts_pass_do_not_disturb_and_an_urgent_one_passes_quiet_hours(
    dispatcher: Dispatcher,
    resources: Resources,
    care_settings,
    clock: Clock,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    engine: AsyncEngine,
) -> None:
    await seed_customers(
        snapshot("13800000001", do_not_disturb=True),
        snapshot("13800000002", sms_opt_out=True),
    )
    clock.now = TOMORROW.replace(hour=14, minute=30)  # 22:30 in Beijing

    async def alert(urgent: bool) -> uuid.UUID:
        async with resources.session() as session:
            campaign = await service.create_alert(
                session,
                AlertCreate(
                    name="台风预警", regions=["广东"], template="台风今夜登陆", urgent=urgent
                ),
                SUPERVISOR,
                care_settings,
            )
            return campaign.id

    routine, urgent = await alert(urgent=False), await alert(urgent=True)
    assert await dispatcher.run(routine, seconds=30) == "idle"
    assert await dispatcher.run(urgent, seconds=30) == "done"

    assert await sent_phones(sandbox) == ["13800000001"]  # the opted-out number never
    assert await states(engine, routine) == {"13800000001": "held", "13800000002": "suppressed"}


async def test_preview_forecasts_quiet_hours_holds_and_the_frequency_cap(
    dispatcher: Dispatcher,
    resources: Resources,
    care_settings,
    seed_customers: SeedCustomers,
    start_campaign,
) -> None:
    await seed_customers(
        snapshot("13800000001", region="新疆", time_zone="Asia/Urumqi"),  # 3 this week
        snapshot("13800000002", time_zone="Asia/Shanghai"),
        snapshot("13800000003", time_zone="Asia/Urumqi"),
        snapshot("13800000004", do_not_disturb=True),
    )
    for _ in range(3):
        await dispatcher.run(
            await start_campaign(category=Category.marketing, audience=Audience(regions=["新疆"])),
            seconds=30,
        )

    late = TOMORROW.replace(hour=14, minute=30)  # 22:30 in Beijing, 20:30 in Urumqi
    async with resources.session() as session:
        campaign = await service.create_campaign(
            session,
            CampaignCreate(
                name="晚间关怀", template="{name}您好", category=Category.marketing, send_at=late
            ),
            SUPERVISOR,
        )
        preview = await service.preview(session, campaign.id, care_settings)

    assert preview.suppressed == {"frequency_cap": 1, "do_not_disturb": 1}
    assert (preview.will_send, preview.held_for_quiet_hours) == (2, 1)


@pytest.mark.pg_timers
async def test_a_batch_caught_in_a_deadlock_is_taken_again_and_sends_once(
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    seed_customers: SeedCustomers,
    start_campaign,
    engine: AsyncEngine,
    caplog,
) -> None:
    """The cap's customer locks against a writer taking the same customers in the other
    order (as the read-model consumer may): PostgreSQL aborts the batch, which is redone."""
    await seed_customers(snapshot("13800000001"), snapshot("13800000002"))
    campaign_id = await start_campaign(category=Category.marketing)

    async def waiting_on_a_lock() -> bool:
        async with engine.connect() as probe:
            waiting = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FOR NO KEY UPDATE%'"
                )
            )
        return bool(waiting)

    async with engine.connect() as writer:
        transaction = await writer.begin()
        # The batch's own deadlock check fires first, so it is the one PostgreSQL aborts.
        await writer.execute(text("SET LOCAL deadlock_timeout = '30s'"))
        await writer.execute(
            text("SELECT 1 FROM care.customer WHERE msisdn = '13800000002' FOR UPDATE")
        )
        run = asyncio.create_task(dispatcher.run(campaign_id, seconds=30))
        await wait_for(waiting_on_a_lock, 20, "the batch to wait on the writer's lock")
        await writer.execute(
            text("SELECT 1 FROM care.customer WHERE msisdn = '13800000001' FOR UPDATE")
        )
        await transaction.rollback()

    assert await run == "done"
    assert sorted(await sent_phones(sandbox)) == ["13800000001", "13800000002"]
    assert "hit a deadlock; retrying" in caplog.text
