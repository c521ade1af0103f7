"""Business rules of the complaint service. Takes a session, never commits."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.care.contract import SatisfactionReplied
from services.complaint import repository as repo
from services.complaint import sla
from services.complaint.calendar import (
    BusinessCalendar,
    YearSchedule,
    library_schedule,
    parse_hours,
)
from services.complaint.config import ComplaintSettings, get_complaint_settings
from services.complaint.contract import (
    ComplaintClosed,
    ComplaintEscalated,
    ComplaintOpened,
    ComplaintSlaBreached,
    ComplaintStepRecorded,
)
from services.complaint.exceptions import (
    ApprovalRefused,
    CalendarNotFound,
    CompensationNotFound,
    ComplaintNotFound,
    InvalidComplaint,
    InvalidTransition,
    NotYourComplaint,
    PolicyNotFound,
    StaleVersion,
)
from services.complaint.models import (
    OPEN_STATES,
    Action,
    BusinessCalendarRow,
    Channel,
    ClockState,
    Compensation,
    CompensationAudit,
    CompensationStatus,
    Metric,
    Severity,
    SlaClock,
    SlaPolicy,
    State,
    Step,
    Ticket,
)
from services.complaint.repository import Scope
from services.complaint.schemas import (
    Acknowledge,
    Agree,
    CalendarUpdate,
    Clarify,
    Close,
    CompensationIn,
    ComplaintCreate,
    Decision,
    PolicyIn,
    Reassign,
    Satisfaction,
    SweepResult,
    Track,
    Versioned,
    YearImport,
)
from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.events.publish import publish, publish_many
from services.profile.contract import ContactLogEntry

logger = logging.getLogger("keepwell.complaint")

SOURCE = "complaint"
SYSTEM_ACTOR = "system:complaint"

# -- defaults (a fresh installation) ------------------------------------------------------------

DEFAULT_CATEGORIES: list[tuple[str, str]] = [
    ("network_signal", "网络信号"),
    ("billing", "计费 / 不明扣费（增值业务）"),
    ("service_attitude", "服务态度"),
    ("number", "号码"),
    ("tariff", "资费"),
    ("points", "积分兑换"),
    ("sim_device", "SIM卡 / 终端"),
    ("other", "其他"),
]
DEFAULT_CALENDAR = "中国大陆工作日"

_H = 60  # minutes per hour


def _targets(fr: int, fc: int, sa: int, tr: int, res: int, business: bool = True) -> dict[str, Any]:
    return {
        Metric.first_response.value: {"minutes": fr * _H, "business": business},
        Metric.facts_clarified.value: {"minutes": fc * _H, "business": True},
        Metric.solution_agreed.value: {"minutes": sa * _H, "business": True},
        Metric.tracking.value: {"minutes": tr * _H, "business": True},
        Metric.resolution.value: {"minutes": res * _H, "business": True},
    }


DEFAULT_POLICIES: list[dict[str, Any]] = [
    {
        "name": "工信部申诉 (regulator)",
        "conditions": {"channel": ["regulator"]},
        "targets": _targets(2, 8, 16, 24, 40),
    },
    {
        "name": "特急 (critical)",
        "conditions": {"severity": ["critical"]},
        "targets": _targets(2, 8, 16, 24, 40),
    },
    {
        "name": "钻卡客户 (diamond)",
        "conditions": {"tier": ["diamond"]},
        "targets": _targets(4, 8, 16, 32, 56),
    },
    {
        "name": "金卡/银卡客户 (gold, silver)",
        "conditions": {"tier": ["gold", "silver"]},
        "targets": _targets(8, 16, 24, 40, 64),
    },
    # Normal: first response within 24 hours, calendar time (nights and weekends count).
    {
        "name": "普通 (normal)",
        "conditions": {},
        "targets": _targets(24, 16, 24, 40, 80, business=False),
    },
]


async def install_defaults(session: AsyncSession, today: date | None = None) -> bool:
    """Categories, the default business calendar (this year and its neighbours from the
    ``holidays`` library) and the seeded SLA policies, where none exist yet."""
    installed = False
    if not await repo.any_category(session):
        await repo.insert_categories(
            session,
            [
                {"code": c, "name": n, "active": True, "position": i}
                for i, (c, n) in enumerate(DEFAULT_CATEGORIES)
            ],
        )
        installed = True
    if not await repo.calendar_rows(session):
        row = BusinessCalendarRow(
            name=DEFAULT_CALENDAR,
            time_zone="Asia/Shanghai",
            hours=[["08:30", "12:00"], ["13:30", "18:00"]],
            working_weekdays=[0, 1, 2, 3, 4],
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        year = (today or clock.today()).year
        for y in (year - 1, year, year + 1):
            await _store_schedule(session, row.id, library_schedule(y), SYSTEM_ACTOR)
        installed = True
    if not await repo.policies(session, active_only=False):
        calendar_id = (await repo.calendar_rows(session))[0].id
        assert calendar_id is not None
        for position, policy in enumerate(DEFAULT_POLICIES, 1):
            session.add(SlaPolicy(position=position * 10, calendar_id=calendar_id, **policy))
        await session.flush()
        installed = True
    return installed


async def _store_schedule(
    session: AsyncSession, calendar_id: int, schedule: YearSchedule, by: str
) -> None:
    days = [{"day": d, "working": False, "name": n} for d, n in sorted(schedule.days_off.items())]
    days += [{"day": d, "working": True, "name": "调休上班"} for d in sorted(schedule.workdays)]
    await repo.replace_year(
        session, calendar_id, schedule.year, days, schedule.provisional, schedule.source, by
    )


# -- calendars ----------------------------------------------------------------------------------

Version = tuple[int, datetime]
_CALENDAR_CACHE: dict[tuple[int, Version], BusinessCalendar] = {}


async def load_calendar(
    session: AsyncSession, calendar_id: int, version: Version | None = None
) -> BusinessCalendar:
    """A calendar as of its current version (cached per process by id and version)."""
    if version is None:
        version = (await repo.calendar_versions(session)).get(calendar_id)
        if version is None:
            raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    cached = _CALENDAR_CACHE.get((calendar_id, version))
    if cached is not None:
        return cached
    row = await session.get(BusinessCalendarRow, calendar_id)
    if row is None:
        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    years = {y.year: y for y in await repo.calendar_years(session, calendar_id)}
    days = await repo.calendar_days(session, calendar_id)
    schedules: dict[int, YearSchedule] = {}
    for year, info in years.items():
        in_year = [d for d in days if d.day.year == year]
        schedules[year] = YearSchedule(
            year=year,
            days_off={d.day: d.name for d in in_year if not d.working},
            workdays=frozenset(d.day for d in in_year if d.working),
            provisional=info.provisional,
            source=info.source,
        )
    calendar = BusinessCalendar(
        time_zone=row.time_zone,
        hours=parse_hours(row.hours),
        working_weekdays=frozenset(row.working_weekdays),
        years=schedules,
    )
    if len(_CALENDAR_CACHE) > 64:
        _CALENDAR_CACHE.clear()
    _CALENDAR_CACHE[(calendar_id, version)] = calendar
    return calendar


class Calendars:
    """The calendars one unit of work needs, loaded once each."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.versions: dict[int, Version] | None = None
        self.found: dict[int, BusinessCalendar] = {}

    async def get(self, calendar_id: int | None) -> BusinessCalendar:
        if calendar_id is None:
            return BusinessCalendar()
        if calendar_id not in self.found:
            if self.versions is None:
                self.versions = await repo.calendar_versions(self.session)
            version = self.versions.get(calendar_id)
            if version is None:
                self.found[calendar_id] = BusinessCalendar()
            else:
                self.found[calendar_id] = await load_calendar(self.session, calendar_id, version)
        return self.found[calendar_id]


def timing(settings: ComplaintSettings | None = None) -> sla.AlertTiming:
    settings = settings or get_complaint_settings()
    return sla.AlertTiming(
        lead=timedelta(minutes=settings.warn_lead_minutes),
        escalate_after=timedelta(minutes=settings.escalate_after_minutes),
    )


# -- access -------------------------------------------------------------------------------------


def scope_of(principal: Principal) -> Scope:
    """Admin and operator read all; supervisors and managers their team's (a manager
    without a team in the token: the tickets they handle); partners all (the routes admit
    them with ``complaints:read`` only, and show them a partner's view)."""
    match principal.role:
        case Role.admin | Role.operator | Role.partner:
            return Scope()
        case Role.supervisor if principal.team_id:
            return Scope(team_id=principal.team_id)
        case Role.manager if principal.team_id:
            return Scope(team_id=principal.team_id)
        case Role.manager:
            return Scope(handler_id=principal.user_id)
        case Role.supervisor:
            raise NotYourComplaint("a supervisor token must name the team")
    raise NotYourComplaint(f"role {principal.role.value} may not see complaints")


def check_may_change(principal: Principal, ticket: Ticket) -> None:
    """Managers change the tickets they handle; supervisors their team's (the read scope
    already limits them to it); admin and operator any."""
    if principal.role is Role.manager and ticket.handler_id != principal.user_id:
        raise NotYourComplaint(
            f"complaint {ticket.number} is handled by {ticket.handler_id or 'nobody'}; "
            "managers change only the complaints they handle"
        )


ALLOWED: dict[State, tuple[str, ...]] = {
    State.new: ("acknowledge", "wait"),
    State.acknowledged: ("clarify", "wait"),
    State.facts_clarified: ("agree", "wait"),
    State.solution_agreed: ("track", "wait"),
    State.tracking: ("track", "close", "wait"),
    State.waiting_customer: ("resume",),
    State.closed: ("reopen", "satisfaction"),
}


def allowed_next(ticket: Ticket, now: datetime | None = None) -> list[str]:
    allowed = list(ALLOWED[ticket.state])
    if ticket.state is State.closed and ticket.closed_at is not None:
        limit = ticket.closed_at + timedelta(days=get_complaint_settings().reopen_days)
        if (now or clock.now()) > limit:
            allowed.remove("reopen")
    return allowed


def _require(ticket: Ticket, action: str, now: datetime, why: str | None = None) -> None:
    allowed = allowed_next(ticket, now)
    if action not in allowed:
        message = why or f"cannot {action} complaint {ticket.number} in state {ticket.state.value}"
        raise InvalidTransition(message, state=ticket.state.value, allowed=allowed)


async def get_ticket(session: AsyncSession, principal: Principal, ticket_id: int) -> Ticket:
    found = await repo.get_ticket(session, scope_of(principal), ticket_id)
    if found is None:
        raise ComplaintNotFound(f"no complaint {ticket_id}", field="complaint_id")
    return found


async def _for_change(
    session: AsyncSession, principal: Principal, ticket_id: int, version: int | None
) -> Ticket:
    found = await repo.get_ticket(session, scope_of(principal), ticket_id, for_update=True)
    if found is None:
        raise ComplaintNotFound(f"no complaint {ticket_id}", field="complaint_id")
    check_may_change(principal, found)
    if version is not None and found.version != version:
        raise StaleVersion(
            f"complaint {found.number} is at version {found.version}, not {version}: "
            "read it again and retry",
            field="version",
        )
    return found


# -- creating -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInfo:
    """What choosing a policy and starting clocks need of it (cached per process)."""

    id: int | None
    name: str
    active: bool
    conditions: dict[str, Any]
    targets: dict[str, Any]
    calendar_id: int


_POLICY_CACHE: dict[str, list[PolicyInfo]] = {}


async def _policies(session: AsyncSession, stamp: str) -> list[PolicyInfo]:
    """Active policies in order, cached until any policy changes (count, versions, time)."""
    cached = _POLICY_CACHE.get(stamp)
    if cached is None:
        found = await repo.policies(session)
        if not found and await install_defaults(session):
            found = await repo.policies(session)
        cached = [
            PolicyInfo(p.id, p.name, p.active, dict(p.conditions), dict(p.targets), p.calendar_id)
            for p in found
        ]
        _POLICY_CACHE.clear()
        if found:
            _POLICY_CACHE[stamp] = cached
    return cached


def _matches(policy: PolicyInfo, values: dict[str, Any]) -> bool:
    for key, wanted in policy.conditions.items():
        if wanted is None:
            continue
        if key == "repeat":
            if bool(values["repeat"]) is not bool(wanted):
                return False
        elif values.get(key) not in wanted:
            return False
    return True


def choose_policy(policies: Sequence[PolicyInfo], values: dict[str, Any]) -> PolicyInfo | None:
    for policy in policies:
        if policy.active and _matches(policy, values):
            return policy
    return None


def _new_clocks(
    policy: PolicyInfo | None, calendar: BusinessCalendar, now: datetime, timing_: sla.AlertTiming
) -> list[sla.NewClock]:
    if policy is None:
        return []
    clocks: list[sla.NewClock] = []
    for metric in Metric:
        target = policy.targets.get(metric.value)
        if not target:
            continue
        c = sla.NewClock(
            metric=metric,
            state=ClockState.waiting,
            policy_id=policy.id,
            calendar_id=policy.calendar_id,
            target_minutes=int(target["minutes"]),
            business=bool(target.get("business", True)),
        )
        if sla.STARTS_AT[metric] is State.new:
            sla.start(c, calendar, now, timing_)
        clocks.append(c)
    return clocks


def _clock_values(c: sla.Clock, ticket_id: int) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "metric": c.metric,
        "state": c.state,
        "policy_id": c.policy_id,
        "calendar_id": c.calendar_id,
        "target_minutes": c.target_minutes,
        "business": c.business,
        "started_at": c.started_at,
        "segment_start": c.segment_start,
        "used_seconds": c.used_seconds,
        "paused_seconds": c.paused_seconds,
        "due_at": c.due_at,
        "cycle": c.cycle,
        "alert_level": c.alert_level,
        "next_alert_at": c.next_alert_at,
    }


def _earliest_due(clocks: Sequence[sla.Clock]) -> datetime | None:
    dues = [c.due_at for c in clocks if c.state is ClockState.running and c.due_at is not None]
    return min(dues) if dues else None


async def create_ticket(
    session: AsyncSession,
    principal: Principal,
    data: ComplaintCreate,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket. A retried POST with the same Idempotency-Key is answered by the kernel
    (services/kit/idempotency.py) without coming here, so it never counts as a repeat."""
    if principal.role is Role.partner:
        raise NotYourComplaint("partners may not register complaints")
    now = now or clock.now()
    settings = get_complaint_settings()

    async def facts() -> repo.CreateFacts:
        return await repo.create_facts(
            session,
            data.msisdn,
            data.category,
            now - timedelta(days=settings.repeat_window_days),
            now - timedelta(days=settings.repeat_count_days),
        )

    found = await facts()
    if found.category_active is None and await install_defaults(session):
        found = await facts()
    if not found.customer_found:
        raise InvalidComplaint(f"{data.msisdn} is not a customer on file", field="msisdn")
    if principal.role in (Role.manager, Role.supervisor) and principal.team_id not in (
        None,
        found.team_id,
    ):
        raise NotYourComplaint(f"{data.msisdn} is another team's customer", field="msisdn")
    if not found.category_active:
        raise InvalidComplaint(f"unknown category {data.category!r}", field="category")

    severity = data.severity
    if data.channel is Channel.regulator:
        severity = severity.at_least(Severity.urgent)
    latest = found.latest_same_category
    if latest is not None:
        severity = severity.raised()
    policies = await _policies(session, found.policies_stamp)
    policy = choose_policy(
        policies,
        {
            "severity": severity.value,
            "tier": found.tier,
            "channel": data.channel.value,
            "category": data.category,
            "repeat": latest is not None,
        },
    )
    calendars = Calendars(session)
    calendars.versions = found.calendar_versions
    calendar = await calendars.get(policy.calendar_id if policy else None)
    timing_ = timing(settings)
    clocks = _new_clocks(policy, calendar, now, timing_)

    values: dict[str, Any] = {
        "msisdn": data.msisdn,
        "channel": data.channel.value,
        "category": data.category,
        "description": data.description,
        "severity": severity.value,
        "requested_severity": data.severity.value,
        "state": State.new.value,
        "needs": json.dumps([n.value for n in data.needs]),
        "handler_id": data.handler_id or found.manager_id,
        "team_id": found.team_id,
        "tier": found.tier or "none",
        "is_repeat": latest is not None,
        "repeat_of_id": latest,
        "policy_id": policy.id if policy else None,
        "version": 1,
        "opened_at": now,
        "opened_by": principal.user_id,
        "updated_at": now,
        "next_due_at": _earliest_due(clocks),
        "breached": False,
        "reopened_count": 0,
    }
    day = now.astimezone(clock.BEIJING).date()
    ticket_id, number = await repo.insert_ticket_row(session, values, f"{day:%Y%m%d}")
    await repo.insert_clocks(session, [_clock_values(c, ticket_id) for c in clocks])
    await repo.insert_attachments(
        session,
        [
            {
                **a.model_dump(),
                "ticket_id": ticket_id,
                "added_by": principal.user_id,
                "added_at": now,
            }
            for a in data.attachments
        ],
    )
    await repo.insert_step(
        session,
        {
            "ticket_id": ticket_id,
            "step": "opened",
            "from_state": "",
            "to_state": State.new.value,
            "by": principal.user_id,
            "at": now,
            "notes": data.description[:4000],
            "data": {"repeat_of_id": latest, "severity": severity.value},
        },
    )
    recent = found.recent
    await publish(
        session,
        ComplaintOpened(
            complaint_id=str(ticket_id),
            msisdn=data.msisdn,
            category=data.category,
            channel=data.channel.value,
            severity=severity.value,
            opened_at=now,
            repeat_count=recent + 1,
            number=number,
        ),
        aggregate_id=str(ticket_id),
        actor=principal.user_id,
    )
    ticket = Ticket(
        **(values | {"needs": [n.value for n in data.needs]}),
        id=ticket_id,
        number=number,
    )
    ticket.channel = data.channel
    ticket.severity = severity
    ticket.requested_severity = data.severity
    ticket.state = State.new
    return ticket


# -- the flow -----------------------------------------------------------------------------------


class _Change:
    """One change to a ticket: its clocks and calendars loaded once."""

    def __init__(self, session: AsyncSession, ticket: Ticket, now: datetime) -> None:
        self.session = session
        self.ticket = ticket
        self.now = now
        self.calendars = Calendars(session)
        self.timing = timing()
        self.clocks: dict[Metric, SlaClock] = {}

    async def load(self) -> _Change:
        assert self.ticket.id is not None
        self.clocks = {
            c.metric: c for c in await repo.clocks_of(self.session, self.ticket.id, for_update=True)
        }
        return self

    async def _cal(self, c: SlaClock) -> BusinessCalendar:
        return await self.calendars.get(c.calendar_id)

    async def stop(self, metric: Metric) -> None:
        c = self.clocks.get(metric)
        if c is not None:
            sla.stop(c, await self._cal(c), self.now)

    async def start(self, metric: Metric) -> None:
        c = self.clocks.get(metric)
        if c is not None:
            sla.start(c, await self._cal(c), self.now, self.timing)

    async def pause_all(self) -> None:
        for c in self.clocks.values():
            sla.pause(c, await self._cal(c), self.now)

    async def resume_paused(self) -> None:
        for c in self.clocks.values():
            if c.state is ClockState.paused:
                sla.resume(c, await self._cal(c), self.now, self.timing)

    async def resume(self, metric: Metric) -> None:
        c = self.clocks.get(metric)
        if c is not None:
            sla.resume(c, await self._cal(c), self.now, self.timing)

    def reset(self, metric: Metric) -> None:
        c = self.clocks.get(metric)
        if c is not None:
            c.state = ClockState.waiting
            c.due_at = c.next_alert_at = c.segment_start = c.started_at = c.stopped_at = None
            c.used_seconds = c.paused_seconds = 0.0

    async def record(
        self, principal: Principal, step: str, to: State, notes: str, data: dict[str, Any]
    ) -> Step:
        ticket = self.ticket
        entry = Step(
            ticket_id=ticket.id,  # type: ignore[arg-type]
            step=step,
            from_state=ticket.state.value,
            to_state=to.value,
            by=principal.user_id,
            at=self.now,
            notes=notes,
            data=data,
        )
        ticket.state = to
        ticket.version += 1
        ticket.updated_at = self.now
        ticket.next_due_at = _earliest_due(list(self.clocks.values()))
        ticket.breached = ticket.breached or any(
            c.state is ClockState.breached or c.breached_at is not None
            for c in self.clocks.values()
        )
        self.session.add(entry)
        await self.session.flush()
        return entry


async def _begin(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    version: int | None,
    action: str,
    now: datetime | None,
) -> _Change:
    now = now or clock.now()
    ticket = await _for_change(session, principal, ticket_id, version)
    _require(ticket, action, now)
    return await _Change(session, ticket, now).load()


async def _publish_contact(
    session: AsyncSession,
    ticket: Ticket,
    entry: Step,
    principal: Principal,
    channel: str,
    *,
    direction: str = "outbound",
    outcome: str = "reached",
) -> None:
    contact = ContactLogEntry(
        msisdn=ticket.msisdn,
        channel=channel,
        direction=direction,
        at=entry.at,
        by=principal.user_id,
        outcome=outcome,
        note=f"投诉{ticket.number}：{entry.step}",
        source=SOURCE,
        source_ref=f"{ticket.number}:{entry.id}",
    )
    await publish(
        session,
        ComplaintStepRecorded(
            complaint_id=str(ticket.id), number=ticket.number, step=entry.step, contact=contact
        ),
        aggregate_id=str(ticket.id),
        actor=principal.user_id,
    )


async def acknowledge(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Acknowledge,
    now: datetime | None = None,
) -> Ticket:
    """情绪认同 (the golden rule: the mood first, so this is the only first step)."""
    change = await _begin(session, principal, ticket_id, data.version, "acknowledge", now)
    await change.stop(Metric.first_response)
    await change.start(Metric.facts_clarified)
    if data.needs is not None:
        change.ticket.needs = [n.value for n in data.needs]
    entry = await change.record(
        principal,
        "acknowledged",
        State.acknowledged,
        data.notes,
        {"emotion": data.emotion, "needs": change.ticket.needs, "channel": data.contact_channel},
    )
    await _publish_contact(session, change.ticket, entry, principal, data.contact_channel)
    return change.ticket


async def clarify(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Clarify,
    now: datetime | None = None,
) -> Ticket:
    """事实澄清 (internal: not a contact)."""
    change = await _begin(session, principal, ticket_id, data.version, "clarify", now)
    await change.stop(Metric.facts_clarified)
    await change.start(Metric.solution_agreed)
    await change.record(
        principal,
        "facts_clarified",
        State.facts_clarified,
        data.notes,
        {"findings": data.findings, "responsibility": data.responsibility.value},
    )
    return change.ticket


async def agree(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Agree,
    now: datetime | None = None,
) -> Ticket:
    """方案讨论: what was agreed, each disagreement and how it was resolved, the actions."""
    change = await _begin(session, principal, ticket_id, data.version, "agree", now)
    await change.stop(Metric.solution_agreed)
    await change.start(Metric.tracking)
    for a in data.actions:
        session.add(
            Action(ticket_id=ticket_id, description=a.description, owner=a.owner, due_on=a.due_on)
        )
    entry = await change.record(
        principal,
        "solution_agreed",
        State.solution_agreed,
        data.notes,
        {
            "agreed": data.agreed,
            "disagreements": [d.model_dump() for d in data.disagreements],
            "actions": [a.model_dump(mode="json") for a in data.actions],
            "channel": data.contact_channel,
        },
    )
    await _publish_contact(session, change.ticket, entry, principal, data.contact_channel)
    return change.ticket


async def track(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Track,
    now: datetime | None = None,
) -> Ticket:
    """执行跟踪: each action done or not, with notes (internal)."""
    change = await _begin(session, principal, ticket_id, data.version, "track", now)
    actions = {a.id: a for a in await repo.actions_of(session, ticket_id)}
    for i, update in enumerate(data.actions):
        found = actions.get(update.action_id)
        if found is None:
            raise InvalidComplaint(
                f"unknown action id {update.action_id} on complaint {change.ticket.number}",
                field=f"actions.{i}.action_id",
            )
        found.done = update.done
        found.done_at = change.now if update.done else None
        if update.note:
            found.note = update.note
    if change.ticket.state is State.solution_agreed:
        await change.stop(Metric.tracking)
    await change.record(
        principal,
        "tracking",
        State.tracking,
        data.notes,
        {"actions": [u.model_dump() for u in data.actions]},
    )
    return change.ticket


async def close(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Close,
    now: datetime | None = None,
) -> Ticket:
    change = await _begin(session, principal, ticket_id, data.version, "close", now)
    ticket = change.ticket
    still_open = [a.id for a in await repo.actions_of(session, ticket_id) if not a.done]
    if still_open:
        raise InvalidTransition(
            f"complaint {ticket.number} has open actions {still_open}; track them as done first",
            state=ticket.state.value,
            allowed=["track", "wait"],
        )
    for metric in Metric:
        await change.stop(metric)
    ticket.closed_at = change.now
    ticket.satisfaction = data.satisfaction
    ticket.satisfaction_reason = data.reason
    entry = await change.record(
        principal,
        "closed",
        State.closed,
        data.notes,
        {"satisfaction": data.satisfaction, "reason": data.reason, "channel": data.contact_channel},
    )
    await _publish_contact(session, ticket, entry, principal, data.contact_channel)
    await publish(
        session,
        ComplaintClosed(
            complaint_id=str(ticket.id),
            number=ticket.number,
            msisdn=ticket.msisdn,
            category=ticket.category,
            satisfaction=data.satisfaction,
            closed_at=change.now,
            handler_id=ticket.handler_id,
            reopened_count=ticket.reopened_count,
        ),
        aggregate_id=str(ticket.id),
        actor=principal.user_id,
    )
    return ticket


async def wait_for_customer(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Versioned,
    now: datetime | None = None,
) -> Ticket:
    change = await _begin(session, principal, ticket_id, data.version, "wait", now)
    await change.pause_all()
    change.ticket.resume_state = change.ticket.state
    await change.record(principal, "waiting_customer", State.waiting_customer, data.notes, {})
    return change.ticket


async def resume(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Versioned,
    now: datetime | None = None,
) -> Ticket:
    change = await _begin(session, principal, ticket_id, data.version, "resume", now)
    back = change.ticket.resume_state or State.new
    await change.resume_paused()
    change.ticket.resume_state = None
    await change.record(principal, "resumed", back, data.notes, {})
    return change.ticket


async def reopen(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Versioned,
    now: datetime | None = None,
) -> Ticket:
    """The customer came back: the resolution clock goes on (time used kept) and the flow
    resumes at facts clarified, with a new solution to agree."""
    now = now or clock.now()
    ticket = await _for_change(session, principal, ticket_id, data.version)
    days = get_complaint_settings().reopen_days
    _require(
        ticket,
        "reopen",
        now,
        f"complaint {ticket.number} closed more than {days} days ago; open a new one"
        if ticket.state is State.closed
        else None,
    )
    change = await _Change(session, ticket, now).load()
    await change.resume(Metric.resolution)
    await change.start(Metric.solution_agreed)
    change.reset(Metric.tracking)
    previous = {"satisfaction": ticket.satisfaction, "reason": ticket.satisfaction_reason}
    ticket.closed_at = None
    ticket.satisfaction = None
    ticket.satisfaction_reason = None
    ticket.reopened_count += 1
    await change.record(principal, "reopened", State.facts_clarified, data.notes, previous)
    return ticket


async def record_satisfaction(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Satisfaction,
    channel: str = "call",
    now: datetime | None = None,
) -> Ticket:
    """The customer's answer to the follow-up closes the loop (a contact, inbound)."""
    now = now or clock.now()
    ticket = await _for_change(session, principal, ticket_id, None)
    _require(ticket, "satisfaction", now)
    change = await _Change(session, ticket, now).load()
    ticket.satisfaction = data.satisfaction
    ticket.satisfaction_reason = data.reason
    entry = await change.record(
        principal,
        "satisfaction",
        State.closed,
        "",
        {"satisfaction": data.satisfaction, "reason": data.reason, "channel": channel},
    )
    await _publish_contact(session, ticket, entry, principal, channel, direction="inbound")
    return ticket


SMS_REPLY = Principal(user_id="system:sms-reply", role=Role.operator)
"""Who records a satisfaction score the customer replied by SMS."""


async def satisfaction_by_reply(session: AsyncSession, event: SatisfactionReplied) -> bool:
    """The customer's score replied to the follow-up closes the loop, as one recorded by the
    handler would; unless the ticket is no longer theirs or no longer closed (reopened
    since): then the reply is only logged. Whether it was recorded."""
    found = int(event.complaint_id) if event.complaint_id.isdigit() else None
    ticket = await repo.get_ticket(session, Scope(), found) if found is not None else None
    if (
        found is None
        or ticket is None
        or ticket.msisdn != event.msisdn
        or ticket.state is not State.closed
    ):
        logger.info(
            "satisfaction reply for complaint %s not recorded: %s",
            event.complaint_id,
            "no such ticket of this customer"
            if ticket is None or ticket.msisdn != event.msisdn
            else f"the ticket is {ticket.state.value}",
        )
        return False
    reason = f"短信回复：{event.content}" if event.satisfaction <= 2 else None
    await record_satisfaction(
        session,
        SMS_REPLY,
        found,
        Satisfaction(satisfaction=event.satisfaction, reason=reason),
        channel="sms",
        now=event.received_at,
    )
    return True


async def reassign(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Reassign,
    now: datetime | None = None,
) -> Ticket:
    if principal.role is Role.manager:
        raise NotYourComplaint("only a supervisor, operator or admin reassigns a complaint")
    now = now or clock.now()
    ticket = await _for_change(session, principal, ticket_id, data.version)
    if ticket.state is State.closed:
        raise InvalidTransition(
            f"complaint {ticket.number} is closed",
            state="closed",
            allowed=allowed_next(ticket, now),
        )
    ticket.handler_id = data.handler_id
    if data.team_id is not None:
        if principal.role is Role.supervisor and data.team_id != principal.team_id:
            raise NotYourComplaint("a supervisor reassigns within their own team", field="team_id")
        ticket.team_id = data.team_id
    ticket.version += 1
    ticket.updated_at = now
    session.add(
        Step(
            ticket_id=ticket_id,
            step="reassigned",
            from_state=ticket.state.value,
            to_state=ticket.state.value,
            by=principal.user_id,
            at=now,
            notes=data.notes,
            data={"handler_id": data.handler_id, "team_id": ticket.team_id},
        )
    )
    await session.flush()
    return ticket


async def add_attachment(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: Any,
    now: datetime | None = None,
) -> int:
    now = now or clock.now()
    ticket = await _for_change(session, principal, ticket_id, None)
    if ticket.state is State.closed:
        raise InvalidTransition(
            f"complaint {ticket.number} is closed",
            state="closed",
            allowed=allowed_next(ticket, now),
        )
    await repo.insert_attachments(
        session,
        [
            {
                **data.model_dump(),
                "ticket_id": ticket_id,
                "added_by": principal.user_id,
                "added_at": now,
            }
        ],
    )
    return len(await repo.attachments_of(session, ticket_id))


# -- SLA view -----------------------------------------------------------------------------------


async def sla_view(
    session: AsyncSession, ticket: Ticket, now: datetime | None = None
) -> dict[str, Any]:
    (view,) = await sla_views(session, [ticket], now)
    return view


async def sla_views(
    session: AsyncSession, tickets: Sequence[Ticket], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each ticket's clocks as the handler sees them, in a query for the clocks and one
    for the policies, however many tickets."""
    now = now or clock.now()
    ids = [t.id for t in tickets if t.id is not None]
    clocks = await repo.clocks_of_tickets(session, ids) if ids else {}
    policy_ids = sorted({t.policy_id for t in tickets if t.policy_id is not None})
    policies = await repo.policies_by_id(session, policy_ids) if policy_ids else {}
    calendars = Calendars(session)
    views = []
    for ticket in tickets:
        assert ticket.id is not None
        metrics = [sla.view(c, await calendars.get(c.calendar_id), now) for c in clocks[ticket.id]]
        policy = policies.get(ticket.policy_id) if ticket.policy_id else None
        provisional = sorted({y for m in metrics for y in m["provisional_years"]})
        note = (
            f"due times in {', '.join(map(str, provisional))} follow statutory holidays only: "
            "that year's official schedule (adjusted working days) is not loaded yet"
            if provisional
            else None
        )
        views.append(
            {
                "policy_id": policy.id if policy else None,
                "policy_name": policy.name if policy else None,
                "metrics": metrics,
                "provisional": bool(provisional),
                "note": note,
            }
        )
    return views


# -- policies and calendars (admin) -------------------------------------------------------------


async def _rebase(
    session: AsyncSession,
    clocks: Sequence[SlaClock],
    old: dict[int, BusinessCalendar],
    new: Calendars,
    now: datetime,
    changes: dict[int, dict[str, Any]],
) -> int:
    timing_ = timing()
    for c in clocks:
        before = old.get(c.calendar_id or 0, BusinessCalendar())
        change = changes.get(c.id or 0, {})
        target_cal = change.get("calendar_id", c.calendar_id)
        sla.rebase(c, before, await new.get(target_cal), now, timing_, **change)
    await session.flush()
    await repo.refresh_due(session, sorted({c.ticket_id for c in clocks}))
    return len(clocks)


async def create_policy(session: AsyncSession, data: PolicyIn) -> SlaPolicy:
    calendar_id = data.calendar_id or (await _default_calendar_id(session))
    if await session.get(BusinessCalendarRow, calendar_id) is None:
        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    policy = SlaPolicy(
        name=data.name,
        position=data.position,
        conditions=data.conditions.model_dump(mode="json", exclude_none=True),
        targets={m.value: t.model_dump() for m, t in data.targets.items()},
        calendar_id=calendar_id,
        active=data.active,
    )
    session.add(policy)
    await session.flush()
    return policy


async def _default_calendar_id(session: AsyncSession) -> int:
    rows = await repo.calendar_rows(session)
    if not rows:
        await install_defaults(session)
        rows = await repo.calendar_rows(session)
    assert rows[0].id is not None
    return rows[0].id


async def update_policy(
    session: AsyncSession, policy_id: int, data: PolicyIn, now: datetime | None = None
) -> tuple[SlaPolicy, int]:
    """Applies from now on to the open tickets under this policy: time already used or
    paused is kept, due times are recomputed with the new targets. (policy, clocks rebased)"""
    now = now or clock.now()
    policy = await session.get(SlaPolicy, policy_id, with_for_update=True)
    if policy is None:
        raise PolicyNotFound(f"no SLA policy {policy_id}", field="policy_id")
    calendar_id = data.calendar_id or policy.calendar_id
    if await session.get(BusinessCalendarRow, calendar_id) is None:
        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    clocks = await repo.running_clocks(session, policy_id=policy_id)
    old_calendars = Calendars(session)
    old = {c.calendar_id or 0: await old_calendars.get(c.calendar_id) for c in clocks}
    policy.name = data.name
    policy.position = data.position
    policy.conditions = data.conditions.model_dump(mode="json", exclude_none=True)
    policy.targets = {m.value: t.model_dump() for m, t in data.targets.items()}
    policy.calendar_id = calendar_id
    policy.active = data.active
    policy.version += 1
    policy.updated_at = now
    changes: dict[int, dict[str, Any]] = {}
    for c in clocks:
        target = policy.targets.get(c.metric.value)
        if target is None:
            continue
        changes[c.id or 0] = {
            "target_minutes": int(target["minutes"]),
            "business": bool(target.get("business", True)),
            "calendar_id": calendar_id,
        }
    rebased = await _rebase(session, clocks, old, Calendars(session), now, changes)
    return policy, rebased


async def calendar_read(
    session: AsyncSession, calendar_id: int, now: datetime | None = None
) -> dict[str, Any]:
    row = await session.get(BusinessCalendarRow, calendar_id)
    if row is None:
        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    days = await repo.calendar_days(session, calendar_id)
    years = []
    for y in await repo.calendar_years(session, calendar_id):
        in_year = [d for d in days if d.day.year == y.year]
        years.append(
            {
                "year": y.year,
                "provisional": y.provisional,
                "source": y.source,
                "days_off": [d.day for d in in_year if not d.working],
                "workdays": [d.day for d in in_year if d.working],
                "loaded_at": y.loaded_at,
            }
        )
    this_year = ((now or clock.now()).astimezone(clock.BEIJING)).year
    known = {y["year"]: y["provisional"] for y in years}
    provisional = sorted(
        y
        for y in range(this_year - 1, this_year + 3)
        if known.get(y, library_schedule(y).provisional)
    )
    note = (
        f"{', '.join(map(str, provisional))}: no official schedule loaded; due times in "
        "those years use statutory holidays only (import the State Council's schedule "
        "with PUT /calendars/{id}/years/{year} or `keepwell calendar import`)"
        if provisional
        else None
    )
    return {
        "id": row.id,
        "name": row.name,
        "time_zone": row.time_zone,
        "hours": row.hours,
        "working_weekdays": row.working_weekdays,
        "version": row.version,
        "years": years,
        "provisional_years": provisional,
        "note": note,
    }


async def _calendar_change(
    session: AsyncSession, calendar_id: int, now: datetime, apply: Any
) -> int:
    """Settle running clocks under the calendar as it was, change it, go on under the new one."""
    if await session.get(BusinessCalendarRow, calendar_id, with_for_update=True) is None:
        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    old = {calendar_id: await load_calendar(session, calendar_id)}
    clocks = await repo.running_clocks(session, calendar_id=calendar_id)
    await apply()
    await session.flush()
    return await _rebase(session, clocks, old, Calendars(session), now, {})


async def import_year(
    session: AsyncSession,
    principal: Principal,
    calendar_id: int,
    year: int,
    data: YearImport,
    now: datetime | None = None,
) -> int:
    """Load a year's official schedule; running clocks on this calendar are rebased."""
    now = now or clock.now()
    for field_name, days in (("days_off", data.days_off), ("workdays", data.workdays)):
        for i, d in enumerate(days):
            if d.year != year:
                raise InvalidComplaint(f"{d} is not in {year}", field=f"{field_name}.{i}")
    overlap = set(data.days_off) & set(data.workdays)
    if overlap:
        raise InvalidComplaint(
            f"{min(overlap)} is both a day off and a working day", field="workdays"
        )
    for i, d in enumerate(data.workdays):
        if d.weekday() < 5:
            # A listed weekday that is worked anyway changes nothing, but is surely a typo.
            raise InvalidComplaint(
                f"{d} is a weekday, not an adjusted working day", field=f"workdays.{i}"
            )

    async def apply() -> None:
        schedule = YearSchedule(
            year=year,
            days_off={d: data.names.get(d, "休息日") for d in data.days_off},
            workdays=frozenset(data.workdays),
            provisional=False,
            source=data.source,
        )
        await _store_schedule(session, calendar_id, schedule, principal.user_id)

    return await _calendar_change(session, calendar_id, now, apply)


async def update_calendar(
    session: AsyncSession, calendar_id: int, data: CalendarUpdate, now: datetime | None = None
) -> int:
    now = now or clock.now()
    if data.hours is not None:
        try:
            parse_hours(data.hours)
        except ValueError as exc:
            raise InvalidComplaint(str(exc), field="hours") from exc
    if data.time_zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(data.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidComplaint(
                f"unknown time zone {data.time_zone!r}", field="time_zone"
            ) from exc

    async def apply() -> None:
        row = await session.get(BusinessCalendarRow, calendar_id)
        assert row is not None
        if data.hours is not None:
            row.hours = data.hours
        if data.working_weekdays is not None:
            row.working_weekdays = sorted(set(data.working_weekdays))
        if data.time_zone is not None:
            row.time_zone = data.time_zone
        row.version += 1
        row.updated_at = now

    return await _calendar_change(session, calendar_id, now, apply)


# -- the sweep ----------------------------------------------------------------------------------


async def sweep(
    session: AsyncSession, now: datetime | None = None, limit: int | None = None
) -> tuple[SweepResult, bool]:
    """One set-based pass over clocks whose next warning or escalation is due: the alert
    rows (unique per ticket, metric, level and cycle) and their events in this transaction.
    Returns the counts and whether more may be due (the batch was full)."""
    import time as _time

    started = _time.perf_counter()
    settings = get_complaint_settings()
    now = now or clock.now()
    batch = limit or settings.sweep_batch
    alerts, picked = await repo.sweep_once(
        session,
        now,
        settings.warn_lead_minutes * 60.0,
        settings.escalate_after_minutes * 60.0,
        settings.default_escalation_manager,
        batch,
    )
    events: list[tuple[Any, str]] = []
    counts = {1: 0, 2: 0, 3: 0}
    # Built without re-validation: every field comes typed from our own query.
    breached, escalated = ComplaintSlaBreached.model_construct, ComplaintEscalated.model_construct
    for a in alerts:
        level = a["level"]
        counts[level] += 1
        if level == sla.WARNING:
            continue
        due = datetime.fromisoformat(a["due_at"])
        aggregate = str(a["ticket_id"])
        if level == sla.BREACH:
            events.append(
                (
                    breached(
                        complaint_id=aggregate,
                        number=a["number"],
                        msisdn=a["msisdn"],
                        metric=a["metric"],
                        due_at=due,
                        handler_id=a["handler_id"],
                        team_id=a["team_id"],
                    ),
                    aggregate,
                )
            )
        events.append(
            (
                escalated(
                    complaint_id=aggregate,
                    number=a["number"],
                    metric=a["metric"],
                    level=level - 1,
                    escalated_to=a["target_id"],
                    due_at=due,
                    team_id=a["team_id"],
                ),
                aggregate,
            )
        )
    await publish_many(session, events, actor=SYSTEM_ACTOR)
    result = SweepResult(
        warnings=counts[1],
        breaches=counts[2],
        escalations=counts[3],
        seconds=round(_time.perf_counter() - started, 3),
    )
    return result, picked >= batch


# -- compensation -------------------------------------------------------------------------------


def _fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def approval_needed(kind: str, amount: Decimal, settings: ComplaintSettings | None = None) -> str:
    settings = settings or get_complaint_settings()
    if amount > settings.approval_admin_above.get(kind, Decimal(0)):
        return "admin"
    if amount > settings.approval_supervisor_above.get(kind, Decimal(0)):
        return "supervisor"
    return "none"


async def request_compensation(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    data: CompensationIn,
    now: datetime | None = None,
) -> Compensation:
    now = now or clock.now()
    settings = get_complaint_settings()
    if data.amount > settings.max_compensation:
        raise InvalidComplaint(
            f"amount {data.amount} is above the maximum of {settings.max_compensation} yuan",
            field="amount",
        )
    ticket = await _for_change(session, principal, ticket_id, None)
    if ticket.state in (State.new, State.closed):
        why = (
            "acknowledge the customer first (mood first, then the matter)"
            if ticket.state is State.new
            else f"complaint {ticket.number} is closed"
        )
        raise InvalidTransition(why, state=ticket.state.value, allowed=allowed_next(ticket, now))
    approval = approval_needed(data.kind.value, data.amount, settings)
    comp = Compensation(
        ticket_id=ticket_id,
        msisdn=ticket.msisdn,
        kind=data.kind,
        amount_fen=_fen(data.amount),
        reason=data.reason,
        status=CompensationStatus.approved if approval == "none" else CompensationStatus.requested,
        approval=approval,
        requested_by=principal.user_id,
        requested_at=now,
        decided_by=SYSTEM_ACTOR if approval == "none" else None,
    )
    session.add(comp)
    await session.flush()
    assert comp.id is not None
    await repo.add_audit(
        session,
        CompensationAudit(
            compensation_id=comp.id,
            action="requested",
            by=principal.user_id,
            role=principal.role.value,
            at=now,
            reason=data.reason,
            details={"kind": data.kind.value, "amount": str(data.amount), "approval": approval},
        ),
    )
    if approval == "none":
        await repo.add_audit(
            session,
            CompensationAudit(
                compensation_id=comp.id,
                action="approved",
                by=SYSTEM_ACTOR,
                role="system",
                at=now,
                reason="below the approval threshold",
                details={},
            ),
        )
    return comp


async def _compensation_for(
    session: AsyncSession, principal: Principal, compensation_id: int
) -> tuple[Compensation, Ticket]:
    comp = await repo.get_compensation(session, compensation_id, for_update=True)
    if comp is None:
        raise CompensationNotFound(f"no compensation {compensation_id}", field="compensation_id")
    ticket = await repo.get_ticket(session, scope_of(principal), comp.ticket_id)
    if ticket is None:  # another team's: not found, not forbidden
        raise CompensationNotFound(f"no compensation {compensation_id}", field="compensation_id")
    return comp, ticket


async def decide_compensation(
    session: AsyncSession,
    principal: Principal,
    compensation_id: int,
    approve: bool,
    data: Decision,
    now: datetime | None = None,
) -> Compensation:
    now = now or clock.now()
    comp, _ = await _compensation_for(session, principal, compensation_id)
    if principal.role not in (Role.supervisor, Role.admin):
        raise ApprovalRefused("only a supervisor or an admin decides on compensation")
    if comp.requested_by == principal.user_id:
        raise ApprovalRefused("nobody approves or rejects their own compensation request")
    if comp.approval == "admin" and principal.role is not Role.admin:
        raise ApprovalRefused(
            f"{_yuan(comp.amount_fen)} yuan of {comp.kind.value} needs an admin's approval"
        )
    if comp.status is not CompensationStatus.requested:
        raise InvalidTransition(
            f"compensation {comp.id} is {comp.status.value}",
            state=comp.status.value,
            allowed=["execute"] if comp.status is CompensationStatus.approved else [],
        )
    comp.status = CompensationStatus.approved if approve else CompensationStatus.rejected
    comp.decided_by = principal.user_id
    await repo.add_audit(
        session,
        CompensationAudit(
            compensation_id=compensation_id,
            action="approved" if approve else "rejected",
            by=principal.user_id,
            role=principal.role.value,
            at=now,
            reason=data.reason,
            details={},
        ),
    )
    return comp


async def execute_compensation(
    session: AsyncSession,
    principal: Principal,
    compensation_id: int,
    data: Decision,
    now: datetime | None = None,
) -> Compensation:
    now = now or clock.now()
    comp, ticket = await _compensation_for(session, principal, compensation_id)
    check_may_change(principal, ticket)
    if comp.status is not CompensationStatus.approved:
        allowed = ["approve", "reject"] if comp.status is CompensationStatus.requested else []
        raise InvalidTransition(
            f"compensation {comp.id} is {comp.status.value}; only an approved one is executed",
            state=comp.status.value,
            allowed=allowed,
        )
    comp.status = CompensationStatus.executed
    comp.executed_by = principal.user_id
    comp.executed_at = now
    await repo.add_audit(
        session,
        CompensationAudit(
            compensation_id=compensation_id,
            action="executed",
            by=principal.user_id,
            role=principal.role.value,
            at=now,
            reason=data.reason,
            details={"amount": str(_yuan(comp.amount_fen)), "kind": comp.kind.value},
        ),
    )
    return comp


async def compensation_summary(
    session: AsyncSession, msisdn: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or clock.now()
    since = (now.astimezone(clock.BEIJING) - timedelta(days=365)).astimezone(UTC)
    done, pending, n = await repo.customer_compensation(session, msisdn, since)
    return {
        "customer_total_12_months": _yuan(done),
        "customer_pending_12_months": _yuan(pending),
        "count_12_months": n,
    }


# -- reports ------------------------------------------------------------------------------------


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end] as Beijing dates -> instants [start 00:00, end+1 00:00)."""
    return (
        datetime.combine(start, time(0), clock.BEIJING),
        datetime.combine(end + timedelta(days=1), time(0), clock.BEIJING),
    )


OPEN_STATE_VALUES = [s.value for s in OPEN_STATES]
