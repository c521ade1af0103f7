"""Demo data for the complaint service: open and closed complaints (Chinese text), so a new
user sees SLA clocks running, some warned or breached, some closed with satisfaction.

The customer copy would fill from profile's events a moment later; the demo writes the
rows it needs itself (the same version 1 those events carry, so they change nothing), and
goes through the service's own rules, so every complaint publishes its events as in
production (warning raises complaint warnings, profile logs the contacts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from services.complaint import repository as repo
from services.complaint import service
from services.complaint.models import Channel, Need, Responsibility, Severity
from services.complaint.schemas import (
    Acknowledge,
    ActionIn,
    ActionUpdate,
    Agree,
    Clarify,
    Close,
    ComplaintCreate,
    Disagreement,
    Track,
    Versioned,
)
from services.kit import clock
from services.kit.app import Resources
from services.kit.auth import Principal, Role
from services.kit.config import Settings
from services.profile.contract import CustomerSnapshot

# (channel, category, description, severity, needs, how far it got, hours ago)
STORIES: list[tuple[Channel, str, str, Severity, list[Need], str, float]] = [
    (
        Channel.hotline,
        "network_signal",
        "小区地下车库和家中卧室信号很弱，通话经常中断，已影响工作。",
        Severity.normal,
        [Need.be_heard, Need.fix_now],
        "new",
        0.5,
    ),
    (
        Channel.regulator,
        "billing",
        "工信部转办：客户称被开通未订购的增值业务，每月扣费10元，要求退费。",
        Severity.normal,
        [Need.compensation, Need.someone_responsible],
        "new",
        1.5,
    ),
    (
        Channel.app,
        "tariff",
        "套餐升级后资费与营业员承诺不一致，客户认为被误导。",
        Severity.urgent,
        [Need.be_respected, Need.never_again],
        "acknowledged",
        3,
    ),
    (
        Channel.store,
        "service_attitude",
        "营业厅工作人员态度冷淡，办理携号转网咨询时被推诿。",
        Severity.normal,
        [Need.be_taken_seriously, Need.someone_responsible],
        "facts_clarified",
        20,
    ),
    (
        Channel.hotline,
        "points",
        "积分兑换的礼品一个月未到货，客服多次答复“正在处理”。",
        Severity.normal,
        [Need.fix_now],
        "solution_agreed",
        30,
    ),
    (
        Channel.social_media,
        "sim_device",
        "新补的SIM卡频繁无服务，客户在微博投诉。",
        Severity.urgent,
        [Need.fix_now, Need.be_heard],
        "waiting",
        6,
    ),
    (
        Channel.letter,
        "number",
        "客户来信要求保留已停机的靓号，担心号码被回收。",
        Severity.normal,
        [Need.be_taken_seriously],
        "closed",
        72,
    ),
    (
        Channel.hotline,
        "network_signal",
        "高铁沿线信号差，客户多次反映。",
        Severity.normal,
        [Need.never_again],
        "closed",
        120,
    ),
]


def _snapshot(c: Any, team_of: Mapping[str, str]) -> CustomerSnapshot:
    return CustomerSnapshot(
        msisdn=c.msisdn,
        version=1,
        name=c.name,
        gender=c.gender,
        birthday=c.birthday,
        region=c.region,
        city=c.city,
        time_zone=c.time_zone,
        join_date=c.join_date,
        status="active",
        tier=c.tier,
        service_level=c.service_level,
        lifecycle=c.lifecycle,
        manager_id=c.manager_id,
        team_id=team_of.get(c.manager_id),
        plan_name=c.plan_name,
        plan_fee=str(c.plan_fee),
        contract_end=c.contract_end,
        balance=str(c.balance),
        sms_opt_out=c.sms_opt_out,
        do_not_disturb=False,
        preferred_hours_start=9,
        preferred_hours_end=21,
        taboos=list(c.taboos),
        important_dates=[],
        honorific=c.honorific,
    )


async def load_demo(
    settings: Settings, customers: Sequence[Any], team_of: Mapping[str, str]
) -> dict[str, int]:
    """A handful of complaints, one per given demo customer (the demo world's records, taken
    by their shape: msisdn, name, manager_id...), up to one per story."""
    customers = list(customers[: len(STORIES)])
    if not customers:
        return {"complaints": 0}
    resources = Resources.open("complaint", settings)
    made = 0
    try:
        async with resources.session() as session:
            await service.install_defaults(session)
            await repo.upsert_customers(session, [_snapshot(c, team_of) for c in customers])
        now = clock.now()
        for customer, story in zip(customers, STORIES, strict=False):
            async with resources.session() as session:
                await _story(session, customer, team_of, story, now)
            made += 1
    finally:
        await resources.close()
    return {"complaints": made}


async def _story(
    session: Any, customer: Any, team_of: Mapping[str, str], story: tuple[Any, ...], now: Any
) -> None:
    channel, category, text, severity, needs, reached, hours = story
    handler = Principal(
        user_id=customer.manager_id, role=Role.manager, team_id=team_of.get(customer.manager_id)
    )
    at = now - timedelta(hours=hours)
    ticket = await service.create_ticket(
        session,
        handler,
        ComplaintCreate(
            msisdn=customer.msisdn,
            channel=channel,
            category=category,
            description=text,
            severity=severity,
            needs=needs,
        ),
        now=at,
    )
    assert ticket.id is not None
    ticket_id: int = ticket.id
    order = ["acknowledged", "facts_clarified", "solution_agreed", "tracking", "closed"]
    target = "acknowledged" if reached == "waiting" else reached
    steps = order[: order.index(target) + 1] if target in order else []
    step_at = at
    version = 1
    for step in steps:
        step_at = step_at + timedelta(hours=hours / (len(order) + 2))
        if step == "acknowledged":
            ticket = await service.acknowledge(
                session,
                handler,
                ticket_id,
                Acknowledge(version=version, emotion="客户情绪激动，先真诚致歉并耐心倾听诉求"),
                now=step_at,
            )
        elif step == "facts_clarified":
            ticket = await service.clarify(
                session,
                handler,
                ticket_id,
                Clarify(
                    version=version,
                    findings="经核实情况属实，已定位原因",
                    responsibility=Responsibility.ours,
                ),
                now=step_at,
            )
        elif step == "solution_agreed":
            ticket = await service.agree(
                session,
                handler,
                ticket_id,
                Agree(
                    version=version,
                    agreed=["三个工作日内处理完毕", "处理结果电话回访"],
                    disagreements=[
                        Disagreement(point="客户要求额外赔偿", resolution="赠送流量包，客户接受")
                    ],
                    actions=[
                        ActionIn(
                            description="跟进处理并回访客户",
                            owner=handler.user_id,
                            due_on=(step_at + timedelta(days=3)).date(),
                        )
                    ],
                ),
                now=step_at,
            )
        elif step == "tracking":
            actions = await repo.actions_of(session, ticket_id)
            ticket = await service.track(
                session,
                handler,
                ticket_id,
                Track(
                    version=version,
                    actions=[
                        ActionUpdate(action_id=a.id or 0, done=True, note="已完成") for a in actions
                    ],
                ),
                now=step_at,
            )
        else:
            ticket = await service.close(
                session,
                handler,
                ticket_id,
                Close(version=version, satisfaction=4 if hours < 100 else 5),
                now=step_at,
            )
        version = ticket.version
    if reached == "waiting":
        await service.wait_for_customer(
            session,
            handler,
            ticket_id,
            Versioned(version=version, notes="客户出差，约定回来再沟通"),
            now=step_at + timedelta(minutes=30),
        )
