"""Automatic care: each day, the active rules (stored in the database) become campaigns.

Every rule turns into at most one campaign per (rule, day), keyed by ``plan_key``, so
planning the same day twice adds nothing. Greetings carry an ``occasion`` so nobody gets
the same greeting twice, whatever the plan does. Service-level A customers get a manager
call task each month instead of an SMS; new VIPs get a welcome SMS and a first-contact
task due within 3 days.
"""

from __future__ import annotations

import calendar
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.care import repository
from services.care.calendar_cn import FESTIVAL_NAMES_ZH, FESTIVALS, festival_date, long_holidays
from services.care.config import CareSettings, get_care_settings
from services.care.dispatch import nudge
from services.care.exceptions import RuleNotFound
from services.care.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Category,
    Rule,
    RuleKind,
    TaskKind,
)
from services.care.rendering import placeholders
from services.care.schemas import RULE_PARAMS, PlanResult, RuleCreate, RuleUpdate
from services.kit import clock
from services.kit.clock import BEIJING
from services.kit.db import after_commit
from services.kit.errors import InvalidInput

logger = logging.getLogger("keepwell.care.automatic")

NETWORK_YEARS = (1, 3, 5, 10)
FIRST_CONTACT_DAYS = 3


def _check_rule(kind: RuleKind, template: str, params: dict[str, Any]) -> None:
    placeholders(template)
    try:
        RULE_PARAMS[kind].model_validate(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        field = f"params.{where}" if where else "params"
        raise InvalidInput(f"{field}: {error['msg']}", field=field) from exc


async def create_rule(session: AsyncSession, data: RuleCreate) -> Rule:
    _check_rule(data.kind, data.template, data.params)
    rule = Rule(**data.model_dump())
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(session: AsyncSession, rule_id: uuid.UUID, data: RuleUpdate) -> Rule:
    rule = await repository.get_rule(session, rule_id)
    if rule is None:
        raise RuleNotFound(f"找不到关怀规则 {rule_id}", field="rule_id")
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "category", "template", "taboo_tags", "params", "active"):
        if key in changes and changes[key] is None:
            raise InvalidInput(f"{key} 不能为 null", field=key)
    template = changes.get("template", rule.template)
    _check_rule(rule.kind, template, changes.get("params", rule.params))
    for key, value in changes.items():
        setattr(rule, key, value)
    await session.flush()
    return rule


def _send_at(day: date, rule: Rule) -> datetime:
    """The rule's hour on ``day``; campaigns use it as each recipient's local time."""
    return datetime.combine(day, time(int(rule.params.get("hour", 10))), tzinfo=BEIJING)


async def _auto_campaign(
    session: AsyncSession,
    *,
    rule: Rule,
    plan_key: str,
    name: str,
    template: str,
    occasion: str | None,
    msisdns: list[str],
    send_at: datetime | None,
    care: CareSettings,
) -> tuple[bool | None, int]:
    """Find or create the campaign for ``plan_key`` and add ``msisdns`` to it: (created,
    recipients added); created is None when nobody is due (no campaign at all)."""
    if not msisdns:
        return None, 0
    campaign = (
        await session.execute(
            select(Campaign).where(Campaign.plan_key == plan_key).with_for_update()  # type: ignore[arg-type]
        )
    ).scalar_one_or_none()
    created = campaign is None
    if campaign is None:
        campaign = Campaign(
            name=name,
            kind=CampaignKind.auto,
            category=rule.category,
            template=template,
            taboo_tags=list(rule.taboo_tags),
            occasion=occasion,
            plan_key=plan_key,
            audience={"source": "list"},
            send_at=send_at,
            local_time=send_at is not None,
            status=CampaignStatus.approved,
            created_by="care-planner",
            approved_by=f"rule:{rule.id}",
            approved_at=clock.now(),
        )
        session.add(campaign)
        await session.flush()
    if campaign.status is CampaignStatus.cancelled:
        return created, 0  # an operator cancelled it: nothing more goes out under it
    await repository.add_list_members(session, campaign.id, msisdns)
    added = await repository.materialise(session, campaign, clock.now(), care.cap_exempt_categories)
    # The planner moves a campaign on only from the states it owns: a paused one keeps its
    # new recipients until an operator resumes it.
    if (campaign.status is CampaignStatus.completed and added) or (
        campaign.status is CampaignStatus.approved and send_at is None
    ):
        campaign.status = CampaignStatus.dispatching
    if campaign.status is CampaignStatus.dispatching:
        redis = session.info.get("redis")
        if redis is not None:
            campaign_id: uuid.UUID = campaign.id
            after_commit(session, lambda: nudge(redis, campaign_id, 1))
    return created, added


async def _audience(session: AsyncSession, rule: Rule, day: date) -> dict[str, Any] | None:
    """(condition, params, occasion, template) for a rule firing on ``day``, else None."""
    p = rule.params
    mmdd = day.strftime("%m-%d")
    vip = "c.tier <> 'none'"
    if rule.kind is RuleKind.birthday:
        birthdays = [mmdd] + (
            ["02-29"] if mmdd == "02-28" and not calendar.isleap(day.year) else []
        )
        return {
            "condition": f"{vip} AND to_char(c.birthday, 'MM-DD') = ANY(:days)",
            "params": {"days": birthdays},
            "occasion": f"birthday:{day.year}",
        }
    if rule.kind is RuleKind.personal_anniversary:
        return {
            "condition": (
                f"{vip} AND EXISTS (SELECT 1 FROM jsonb_array_elements(c.important_dates) d "
                "WHERE right(d->>'date', 5) = :mmdd)"
            ),
            "params": {"mmdd": mmdd},
            "occasion": f"anniversary:{mmdd}:{day.year}",
        }
    if rule.kind is RuleKind.holiday:
        festival = str(p.get("festival"))
        first = festival_date(festival, day.year) if festival in FESTIVALS else None
        if first is None or first - timedelta(days=int(p.get("days_before", 0))) != day:
            return None
        return {
            "condition": vip,
            "params": {},
            "occasion": f"holiday:{festival}:{day.year}",
        }
    if rule.kind is RuleKind.low_balance:
        ahead = day + timedelta(days=int(p.get("days_before", 3)))
        starts = [s for s, _ in long_holidays(ahead.year, int(p.get("min_days", 3)))]
        if ahead not in starts:
            return None
        return {
            "condition": f"{vip} AND c.balance < :below",
            "params": {"below": Decimal(str(p.get("balance_below", "30")))},
            "occasion": f"low_balance:{ahead.isoformat()}",
        }
    if rule.kind is RuleKind.level_b_sms:
        if day.day != int(p.get("day_of_month", 1)):
            return None
        return {
            "condition": "c.service_level = 'B'",
            "params": {},
            "occasion": f"level_b:{day:%Y-%m}",
        }
    return None


async def plan_day(session: AsyncSession, day: date, care: CareSettings) -> PlanResult:
    """Plan every active rule for ``day``; safe to repeat: a repeat creates nothing and
    says so. Each rule plans in a savepoint of its own: one rule that cannot be planned (a
    stored parameter no longer valid) is reported and skipped, and the others still go out."""
    total = _Counts()
    failed: list[str] = []
    for rule in await repository.rules(session):
        try:
            async with session.begin_nested():
                counts = await _plan_rule(session, rule, day, care)
        except Exception:
            logger.exception(
                "care rule %s (%s) could not be planned for %s", rule.id, rule.kind, day
            )
            failed.append(str(rule.id))
            continue
        total.add(counts)
    return PlanResult(
        day=day,
        campaigns_created=total.created,
        campaigns_already_planned=total.already,
        recipients_added=total.recipients,
        tasks_created=total.tasks,
        failed_rules=failed,
    )


@dataclass
class _Counts:
    created: int = 0
    already: int = 0
    recipients: int = 0
    tasks: int = 0

    def campaign(self, made: bool | None, added: int) -> None:
        self.created += made is True
        self.already += made is False
        self.recipients += added

    def add(self, other: _Counts) -> None:
        self.created += other.created
        self.already += other.already
        self.recipients += other.recipients
        self.tasks += other.tasks


async def _plan_rule(session: AsyncSession, rule: Rule, day: date, care: CareSettings) -> _Counts:
    counts = _Counts()
    if rule.kind is RuleKind.network_anniversary:
        for years in rule.params.get("years", NETWORK_YEARS):
            joined = (
                day.replace(year=day.year - int(years))
                if not (day.month == 2 and day.day == 29)
                else None
            )
            if joined is None:
                continue
            msisdns = await repository.customers_where(
                session, "c.tier <> 'none' AND c.join_date = :joined", {"joined": joined}
            )
            counts.campaign(
                *await _auto_campaign(
                    session,
                    rule=rule,
                    plan_key=f"{rule.id}:{day}:{years}",
                    name=f"{rule.name}（网龄{years}年）{day}",
                    template=rule.template.replace("{years}", str(years)),
                    occasion=f"network_age:{years}",
                    msisdns=msisdns,
                    send_at=_send_at(day, rule),
                    care=care,
                )
            )
        return counts
    if rule.kind is RuleKind.level_a_call:
        # From its day of the month on: a month whose day the planner missed (the worker
        # down, an installation started mid-month) still gets its calls; the task is unique
        # per customer and month, so later days add only who is missing.
        if day.day < int(rule.params.get("day_of_month", 1)):
            return counts
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        rows = await repository.customers_with_managers(session, "c.service_level = 'A'")
        for msisdn, manager_id in rows:
            new_task = await repository.add_task(
                session,
                msisdn=msisdn,
                manager_id=manager_id,
                kind=TaskKind.monthly_call,
                period=f"{day:%Y-%m}",
                due_on=last,
                note=rule.template,
            )
            counts.tasks += int(new_task)
        return counts
    if rule.kind is RuleKind.vip_welcome:
        return counts  # event-driven: see welcome_new_vip
    found = await _audience(session, rule, day)
    if found is None:
        return counts
    msisdns = await repository.customers_where(session, found["condition"], found["params"])
    template = rule.template
    if rule.kind is RuleKind.holiday:
        festival = str(rule.params["festival"])
        template = template.replace("{festival}", FESTIVAL_NAMES_ZH[festival])
    counts.campaign(
        *await _auto_campaign(
            session,
            rule=rule,
            plan_key=f"{rule.id}:{day}",
            name=f"{rule.name} {day}",
            template=template,
            occasion=found["occasion"],
            msisdns=msisdns,
            send_at=_send_at(day, rule),
            care=care,
        )
    )
    return counts


async def welcome_new_vip(session: AsyncSession, msisdn: str, manager_id: str | None) -> None:
    """A new VIP: a welcome SMS (today's welcome campaign) and a first-contact task."""
    today = clock.today()
    await repository.add_task(
        session,
        msisdn=msisdn,
        manager_id=manager_id,
        kind=TaskKind.first_contact,
        period="vip",
        due_on=today + timedelta(days=FIRST_CONTACT_DAYS),
        note="新晋VIP客户：3天内完成首次回访",
    )
    rules = [r for r in await repository.rules(session) if r.kind is RuleKind.vip_welcome]
    for rule in rules:
        await _auto_campaign(
            session,
            rule=rule,
            plan_key=f"{rule.id}:{today}",
            name=f"{rule.name} {today}",
            template=rule.template,
            occasion="vip_welcome",
            msisdns=[msisdn],
            send_at=None,
            care=get_care_settings(),
        )


# {honorific} alone: it already carries the surname (王先生), so "{name}{honorific}" would
# read 王伟王先生 (the preview flags that).
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "kind": RuleKind.birthday,
        "name": "生日祝福",
        "template": "{honorific}，今天是您的生日，{manager_name}和全体客户经理祝您生日快乐！",
    },
    {
        "kind": RuleKind.network_anniversary,
        "name": "网龄纪念",
        "template": "{honorific}，感谢您与我们相伴{years}年，您的专属客户经理随时为您服务。",
        "params": {"years": list(NETWORK_YEARS)},
    },
    {
        "kind": RuleKind.personal_anniversary,
        "name": "纪念日祝福",
        "template": "{honorific}，今天是您的重要纪念日，祝您和家人幸福美满！",
    },
    *[
        {
            "kind": RuleKind.holiday,
            "name": f"{zh}祝福",
            "template": "{honorific}，" + zh + "快乐！感谢您一直以来的信任与支持。",
            "params": {"festival": key},
        }
        for key, zh in FESTIVAL_NAMES_ZH.items()
        if key != "tomb_sweeping"
    ],
    {
        "kind": RuleKind.low_balance,
        "name": "长假前余额提醒",
        "category": Category.care,
        "template": "{honorific}，长假将至，您的话费余额较少，请及时充值，以免影响使用。",
        "params": {"days_before": 3, "balance_below": "30"},
    },
    {
        "kind": RuleKind.vip_welcome,
        "name": "新晋VIP欢迎",
        "category": Category.care,
        "template": ("{honorific}，欢迎成为{tier}客户！您可享受专属客户经理、优先办理等专属服务。"),
    },
    {
        "kind": RuleKind.level_a_call,
        "name": "A级客户月度回访",
        "category": Category.care,
        "template": "A级客户月度电话回访",
    },
    {
        "kind": RuleKind.level_b_sms,
        "name": "B级客户月度关怀",
        "category": Category.care,
        "template": "{honorific}，您的专属客户经理提醒您：本月如有任何需要，欢迎随时联系。",
    },
]


async def install_default_rules(session: AsyncSession) -> int:
    """The rules a fresh installation starts with (skipped when any rule exists, except
    that default templates of an earlier release which repeated the surname are fixed)."""
    existing = await repository.rules(session, include_inactive=True)
    if existing:
        defaults = {str(d["template"]) for d in DEFAULT_RULES}
        for rule in existing:
            fixed = rule.template.replace("{name}{honorific}", "{honorific}", 1)
            if fixed != rule.template and fixed in defaults:
                rule.template = fixed
        return 0
    for data in DEFAULT_RULES:
        await create_rule(session, RuleCreate(**data))
    return len(DEFAULT_RULES)


async def service_message(
    session: AsyncSession,
    *,
    plan_key: str,
    name: str,
    template: str,
    msisdn: str,
    send_at: datetime | None = None,
) -> int:
    """One service message to one customer (a complaint's acknowledgement, closure or
    follow-up), through the same dispatch as campaigns: opt-out and quiet hours apply,
    the frequency cap does not (category ``alert`` is cap-exempt), and ``plan_key`` makes a
    redelivered event create nothing. Returns the recipients added (0 or 1)."""
    campaign = (
        await session.execute(
            select(Campaign).where(Campaign.plan_key == plan_key).with_for_update()  # type: ignore[arg-type]
        )
    ).scalar_one_or_none()
    if campaign is not None:
        return 0
    campaign = Campaign(
        name=name,
        kind=CampaignKind.auto,
        category=Category.alert,
        template=template,
        # No occasion: an occasion means one greeting per customer ever, and a customer gets
        # a complaint's acknowledgement, closure and follow-up, for every complaint they
        # make. ``plan_key`` already makes each message once.
        occasion=None,
        plan_key=plan_key,
        audience={"source": "list"},
        send_at=send_at,
        control_percent=Decimal(0),
        status=CampaignStatus.approved,
        created_by="complaint-service",
        approved_by="complaint-service",
        approved_at=clock.now(),
    )
    session.add(campaign)
    await session.flush()
    await repository.add_list_members(session, campaign.id, [msisdn])
    care = get_care_settings()
    added = await repository.materialise(session, campaign, clock.now(), care.cap_exempt_categories)
    if send_at is None:
        campaign.status = CampaignStatus.dispatching
        redis = session.info.get("redis")
        if redis is not None:
            campaign_id: uuid.UUID = campaign.id
            after_commit(session, lambda: nudge(redis, campaign_id, 1))
    return added
