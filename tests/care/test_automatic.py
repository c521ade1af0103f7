"""Automatic care: lunar festivals from the calendar library, daily planning from rules
stored in the database, new-VIP welcome, and the read model fed by profile events."""

from __future__ import annotations

from datetime import date

import pytest
from care_support import SeedCustomers, profile_envelope, snapshot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import automatic, repository
from services.care import service as care_service
from services.care.app import create_app
from services.care.calendar_cn import festival_date, long_holidays
from services.care.config import CareSettings
from services.care.consumers import consumer
from services.care.models import RuleKind
from services.care.schemas import Audience, CampaignCreate, RuleCreate
from services.kit import clock
from services.kit.app import Resources
from services.kit.auth import Principal, Role
from services.profile.contract import CustomerUpdated, TierChanged


@pytest.mark.parametrize(
    ("year", "spring", "dragon_boat", "mid_autumn"),
    [
        # State Council holiday arrangements (国务院办公厅关于节假日安排的通知) for each year.
        (2025, date(2025, 1, 29), date(2025, 5, 31), date(2025, 10, 6)),
        (2026, date(2026, 2, 17), date(2026, 6, 19), date(2026, 9, 25)),
        (2027, date(2027, 2, 6), date(2027, 6, 9), date(2027, 9, 15)),
    ],
)
def test_lunar_festivals_fall_on_their_published_dates(
    year: int, spring: date, dragon_boat: date, mid_autumn: date
) -> None:
    assert festival_date("spring_festival", year) == spring
    assert festival_date("dragon_boat", year) == dragon_boat
    assert festival_date("mid_autumn", year) == mid_autumn


def test_long_holidays_follow_the_official_arrangement_including_makeup_workdays() -> None:
    # 2026 Spring Festival: 15-23 February; Saturday 14 February was a working day.
    assert (date(2026, 2, 15), date(2026, 2, 23)) in long_holidays(2026)
    assert (date(2025, 10, 1), date(2025, 10, 8)) in long_holidays(2025)


async def add_rule(resources: Resources, **fields: object) -> None:
    async with resources.session() as session:
        await automatic.create_rule(session, RuleCreate(**fields))  # type: ignore[arg-type]


async def campaigns(engine: AsyncEngine) -> dict[str, list[str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.occasion, r.msisdn FROM care.campaign c "
                "JOIN care.recipient r ON r.campaign_id = c.id ORDER BY r.msisdn"
            )
        )
        found: dict[str, list[str]] = {}
        for occasion, msisdn in rows:
            found.setdefault(occasion, []).append(msisdn)
        return found


async def test_a_day_plan_turns_rules_into_campaigns_once(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    day = date(2026, 2, 17)  # Spring Festival 2026
    await seed_customers(
        snapshot("13800000001", birthday=date(1985, 2, 17), join_date=date(2021, 2, 17)),
        snapshot("13800000002", birthday=date(1990, 7, 1), join_date=date(2020, 2, 17)),
        snapshot("13800000003", tier="none", birthday=date(1985, 2, 17)),
    )
    await add_rule(resources, kind=RuleKind.birthday, name="生日祝福", template="{name}生日快乐")
    await add_rule(
        resources,
        kind=RuleKind.holiday,
        name="节日祝福",
        template="{name}{honorific}，{festival}快乐！",
        params={"festival": "spring_festival"},
    )
    await add_rule(
        resources,
        kind=RuleKind.network_anniversary,
        name="网龄",
        template="感谢{name}相伴{years}年",
    )
    await add_rule(resources, kind=RuleKind.level_a_call, name="A级回访", template="月度回访",
                   params={"day_of_month": 17})  # fmt: skip

    async with resources.session() as session:
        first = await automatic.plan_day(session, day, care_settings)
    async with resources.session() as session:
        again = await automatic.plan_day(session, day, care_settings)

    assert (first.campaigns_created, first.recipients_added) == (3, 4)
    assert (again.campaigns_created, again.campaigns_already_planned) == (0, 3)
    assert again.recipients_added == 0
    assert await campaigns(engine) == {
        "birthday:2026": ["13800000001"],
        "holiday:spring_festival:2026": ["13800000001", "13800000002"],
        "network_age:5": ["13800000001"],
    }
    async with engine.connect() as conn:
        texts = (await conn.execute(text("SELECT template FROM care.campaign"))).scalars().all()
        status = set((await conn.execute(text("SELECT status FROM care.campaign"))).scalars())
    assert "{name}{honorific}，春节快乐！" in texts
    assert "感谢{name}相伴5年" in texts
    assert status == {"approved"}  # each recipient gets it at 10:00 in their own time zone


async def test_service_level_a_customers_get_a_monthly_call_task_for_their_manager(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    await seed_customers(
        snapshot("13800000001", service_level="A", manager_id="m7"),
        snapshot("13800000002", service_level="B"),
    )
    await add_rule(resources, kind=RuleKind.level_a_call, name="A级回访", template="月度电话回访")
    async with resources.session() as session:
        result = await automatic.plan_day(session, date(2026, 12, 1), care_settings)

    assert result.tasks_created == 1
    async with engine.connect() as conn:
        task = (
            await conn.execute(text("SELECT * FROM care.task WHERE kind = 'monthly_call'"))
        ).one()
    assert (task.msisdn, task.manager_id, task.kind, task.due_on) == (
        "13800000001",
        "m7",
        "monthly_call",
        date(2026, 12, 31),
    )


async def test_monthly_calls_missed_on_their_day_are_planned_later_that_month_once(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
) -> None:
    await seed_customers(snapshot("13800000001", service_level="A", manager_id="m7"))
    await add_rule(resources, kind=RuleKind.level_a_call, name="A级回访", template="月度电话回访",
                   params={"day_of_month": 5})  # fmt: skip
    planned = []
    for day in (date(2026, 12, 4), date(2026, 12, 9), date(2026, 12, 10)):
        async with resources.session() as session:
            planned.append((await automatic.plan_day(session, day, care_settings)).tasks_created)

    assert planned == [0, 1, 0]  # not before its day; the 5th missed: the 9th; once a month


async def test_a_new_vip_gets_a_welcome_sms_and_a_first_contact_task_within_three_days(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    await add_rule(
        resources,
        kind=RuleKind.vip_welcome,
        name="新晋VIP欢迎",
        category="care",
        template="{name}{honorific}，欢迎成为{tier}客户！",
    )
    await seed_customers(snapshot("13800000001", tier="none"))
    promoted = TierChanged(
        old_tier="none",
        new_tier="gold",
        reason="月度价值重算",
        customer=snapshot("13800000001", tier="gold", version=2, manager_id="m3"),
    )
    async with resources.session() as session:
        await consumer.receive(session, [profile_envelope(promoted)])

    async with engine.connect() as conn:
        task = (await conn.execute(text("SELECT * FROM care.task"))).one()
        welcome = (
            await conn.execute(
                text(
                    "SELECT c.status, c.occasion, r.msisdn FROM care.campaign c "
                    "JOIN care.recipient r ON r.campaign_id = c.id"
                )
            )
        ).one()
    assert (task.kind, task.manager_id) == ("first_contact", "m3")
    assert (task.due_on - task.created_at.astimezone(clock.BEIJING).date()).days == 3
    assert tuple(welcome) == ("dispatching", "vip_welcome", "13800000001")


async def test_the_read_model_keeps_the_newest_version_of_a_customer(
    resources: Resources, seed_customers: SeedCustomers, engine: AsyncEngine
) -> None:
    await seed_customers(snapshot("13800000001", version=3, sms_opt_out=True))
    stale = CustomerUpdated(
        changed=["sms_opt_out"], customer=snapshot("13800000001", version=2, sms_opt_out=False)
    )
    async with resources.session() as session:
        await consumer.receive(session, [profile_envelope(stale)])

    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT version, sms_opt_out FROM care.customer"))).one()
    assert tuple(row) == (3, True)


async def test_a_vip_created_with_a_recent_join_date_is_welcomed_but_an_imported_one_is_not(
    resources: Resources, seed_customers: SeedCustomers, engine: AsyncEngine
) -> None:
    await seed_customers(
        snapshot("13800000001", join_date=clock.today()),
        snapshot("13800000002", join_date=date(2012, 6, 1)),
    )
    async with engine.connect() as conn:
        tasks = (await conn.execute(text("SELECT msisdn, kind FROM care.task"))).all()
    assert [tuple(t) for t in tasks] == [("13800000001", "first_contact")]


async def test_the_planner_leaves_a_paused_or_cancelled_welcome_campaign_as_it_was_left(
    resources: Resources, seed_customers: SeedCustomers, engine: AsyncEngine
) -> None:
    await add_rule(resources, kind=RuleKind.vip_welcome, name="新晋VIP欢迎", category="care",
                   template="{honorific}，欢迎成为VIP客户！")  # fmt: skip
    await seed_customers(*(snapshot(f"1380000000{i}", tier="none") for i in (1, 2, 3)))

    async def promote(msisdn: str) -> None:
        event = TierChanged(
            old_tier="none", new_tier="gold", reason="月度价值重算",
            customer=snapshot(msisdn, tier="gold", version=2),
        )  # fmt: skip
        async with resources.session() as session:
            await consumer.receive(session, [profile_envelope(event)])

    async def welcome() -> tuple[str, list[str]]:
        async with engine.connect() as conn:
            status = await conn.scalar(text("SELECT status FROM care.campaign"))
            phones = (
                await conn.execute(text("SELECT msisdn FROM care.recipient ORDER BY msisdn"))
            ).scalars()
            return str(status), list(phones)

    await promote("13800000001")
    async with engine.connect() as conn:
        campaign_id = await conn.scalar(text("SELECT id FROM care.campaign"))
    async with resources.session() as session:
        await care_service.pause(session, campaign_id, "运营暂停")
    await promote("13800000002")
    paused = await welcome()
    async with resources.session() as session:
        await care_service.cancel(session, campaign_id)
    await promote("13800000003")

    assert paused == ("paused", ["13800000001", "13800000002"])
    assert await welcome() == ("cancelled", ["13800000001", "13800000002"])


async def test_rule_parameters_are_checked_for_their_kind_when_written(app_client) -> None:
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        answers = [
            await client.post(
                "/rules", json={"kind": kind, "name": "x", "template": "您好", "params": params}
            )
            for kind, params in (
                ("low_balance", {"days_before": "soon"}),
                ("birthday", {"bogus": 1}),
                ("holiday", {"festival": "christmas"}),
                ("network_anniversary", {"years": [0]}),
                ("level_b_sms", {"day_of_month": 31}),
            )
        ]  # fmt: skip
    assert [(a.status_code, a.json()["field"]) for a in answers] == [
        (422, "params.days_before"),
        (422, "params.bogus"),
        (422, "params.festival"),
        (422, "params.years"),
        (422, "params.day_of_month"),
    ]


async def test_one_rule_that_cannot_be_planned_does_not_stop_the_others(
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    day = date(2026, 7, 1)
    await seed_customers(snapshot("13800000001", birthday=date(1985, 7, 1), service_level="B"))
    await add_rule(resources, kind=RuleKind.birthday, name="生日祝福", template="{name}生日快乐")
    async with engine.begin() as conn:  # stored before parameters were checked
        broken = await conn.scalar(
            text(
                "INSERT INTO care.rule (id, kind, name, category, template, taboo_tags, "
                "params, active, created_at) VALUES (gen_random_uuid(), 'level_b_sms', '坏规则', "
                "'care', '您好', '[]', '{\"day_of_month\": \"first\"}', true, now()) RETURNING id"
            )
        )

    async with resources.session() as session:
        planned = await automatic.plan_day(session, day, care_settings)

    assert planned.failed_rules == [str(broken)]
    assert await campaigns(engine) == {"birthday:2026": ["13800000001"]}


async def test_an_automatic_audience_of_200_000_numbers_is_stored_in_one_go(
    resources: Resources, engine: AsyncEngine
) -> None:
    msisdns = [f"139{n:08d}" for n in range(200_000)]
    async with resources.session() as session:
        campaign = await care_service.create_campaign(
            session,
            CampaignCreate(
                name="国庆祝福", template="{name}节日快乐", audience=Audience(source="list")
            ),
            Principal(user_id="care-planner", role=Role.admin),
        )
        added = await repository.add_list_members(session, campaign.id, msisdns)
        again = await repository.add_list_members(session, campaign.id, msisdns[:10])
    async with engine.connect() as conn:
        stored = await conn.scalar(text("SELECT count(*) FROM care.list_member"))
    assert (len(added), again, stored) == (200_000, [], 200_000)
