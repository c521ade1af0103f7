"""Rules of the profile service. Functions take a session and never commit.

Who may do what (the principal comes from the internal token):

- admin, operator: read and change every customer; manage teams and managers.
- supervisor: read and change the customers of their team's managers, incl. reassigning
  them within the team.
- manager: read their own and their team's customers; change their own customers'
  archive (not the tier, not the manager).
- partner: read every customer with the phone number masked (138****1234) unless listed in
  KEEPWELL_PARTNERS_UNMASKED; import customers through the batch endpoint; nothing else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.clock import BEIJING, today
from services.kit.cursors import decode_cursor, encode_cursor
from services.kit.events.publish import publish, publish_many
from services.kit.http import current_request_id
from services.kit.masking import mask_msisdn, sees_numbers
from services.kit.periods import check_period, instants
from services.kit.values import normalise_lookup
from services.profile import repository as repo
from services.profile.config import get_profile_settings
from services.profile.contract import (
    ContactChannel,
    ContactDirection,
    ContactLogEntry,
    ContactOutcome,
    CustomerChurned,
    CustomerCreated,
    CustomerSnapshot,
    CustomerUpdated,
    ManagerReassigned,
    TierChanged,
)
from services.profile.exceptions import (
    Conflict,
    CustomerExists,
    CustomerNotFound,
    Forbidden,
    InvalidInput,
    ManagerNotFound,
    SnapshotMissing,
    StaleVersion,
    TeamNotFound,
    VersionRequired,
)
from services.profile.models import (
    ContactLog,
    Customer,
    CustomerStatus,
    Gender,
    Lifecycle,
    Manager,
    ServiceLevel,
    Team,
    Tier,
)
from services.profile.repository import CustomerFilters
from services.profile.schemas import (
    AuditReadPage,
    AuditReadRow,
    BillingEntry,
    BillingResult,
    ContactCreate,
    CustomerCreate,
    CustomerFields,
    CustomerRead,
    CustomerUpdate,
    ManagerCreate,
    ManagerLeave,
    ManagerUpdate,
    ReachGroup,
    ReachReport,
    RecomputeSummary,
    RetentionReport,
    RetentionRow,
    SnapshotRead,
    SnapshotTaken,
    TeamCreate,
    TeamUpdate,
)
from services.profile.validation import check_custom, surname_of, time_zone_of

# Defaults of a new customer for the fields REQUIRED_FOR_NEW does not cover.
NEW_CUSTOMER_DEFAULTS: dict[str, Any] = {
    "gender": Gender.unknown,
    "balance": Decimal(0),
    "status": CustomerStatus.active,
    "tier": Tier.none,
    "service_level": ServiceLevel.C,
    "lifecycle": Lifecycle.acquisition,
}


# --- who may see and change what -------------------------------------------------------------


def visible_to(principal: Principal) -> ColumnElement[bool]:
    if principal.role in (Role.admin, Role.operator, Role.partner):
        return true()
    if principal.role is Role.supervisor:
        return repo.scope_condition(team_id=principal.team_id) if principal.team_id else false()
    return repo.scope_condition(manager_id=principal.user_id, team_id=principal.team_id)


def _may_see(principal: Principal, customer: Customer, team_id: str | None) -> bool:
    if principal.role in (Role.admin, Role.operator, Role.partner):
        return True
    if principal.role is Role.supervisor:
        return team_id is not None and team_id == principal.team_id
    return customer.manager_id == principal.user_id or (
        team_id is not None and team_id == principal.team_id
    )


def _check_may_edit(principal: Principal, customer: Customer, team_id: str | None) -> None:
    if principal.role in (Role.admin, Role.operator):
        return
    if principal.role is Role.supervisor and team_id is not None and team_id == principal.team_id:
        return
    if principal.role is Role.manager and customer.manager_id == principal.user_id:
        return
    raise Forbidden(f"{principal.role.value} {principal.user_id} 无权修改该客户")


# --- snapshots ---------------------------------------------------------------------------------


def honorific(name: str, gender: str) -> str:
    """王先生 / 欧阳女士; the full name when the gender is unknown."""
    if gender == Gender.unknown:
        return name
    return surname_of(name) + ("女士" if gender == Gender.female else "先生")


def team_of(manager: Manager | None) -> str | None:
    return manager.team_id if manager is not None else None


def snapshot_of(c: Customer, manager: Manager | None) -> CustomerSnapshot:
    """The snapshot events carry; ``manager`` is the customer's current manager record.

    bulk_sql._snapshot builds the same object in SQL for set-based changes."""
    return CustomerSnapshot(
        msisdn=c.msisdn,
        version=c.version,
        name=c.name,
        gender=str(c.gender),
        birthday=c.birthday,
        region=c.region,
        city=c.city,
        time_zone=c.time_zone,
        join_date=c.join_date,
        status=str(c.status),
        tier=str(c.tier),
        service_level=str(c.service_level),
        lifecycle=str(c.lifecycle),
        manager_id=c.manager_id,
        team_id=team_of(manager),
        plan_name=c.plan_name,
        plan_fee=f"{c.plan_fee:.2f}",
        contract_end=c.contract_end,
        balance=f"{c.balance:.2f}",
        sms_opt_out=c.sms_opt_out,
        do_not_disturb=c.do_not_disturb,
        preferred_hours_start=c.preferred_hours_start,
        preferred_hours_end=c.preferred_hours_end,
        taboos=list(c.taboos),
        important_dates=list(c.important_dates),
        custom=dict(c.custom),
        honorific=honorific(c.name, str(c.gender)),
        contract_name=c.contract_name,
        churned_on=c.churned_on,
        churn_reason=c.churn_reason,
        value_quadrant=str(c.value_quadrant) if c.value_quadrant else None,
        contact_channels=list(c.contact_channels),
        sms_opt_out_at=c.sms_opt_out_at,
        tags=list(c.tags),
        interests=list(c.interests),
        manager_name=manager.name if manager is not None else None,
        customer_id=c.id,
    )


# --- customers ---------------------------------------------------------------------------------


def _raise_if_broken(data: CustomerFields) -> None:
    broken = data.rule_broken()
    if broken is not None:
        raise InvalidInput(f"{broken.field}：{broken.message}", field=broken.field)


async def _check_manager(session: AsyncSession, manager_id: str | None) -> Manager | None:
    """The manager ``manager_id``; refuses an unknown or departed one."""
    if manager_id is None:
        return None
    manager = await repo.get_manager(session, manager_id, lock="share")
    if manager is None:
        raise InvalidInput(f"manager_id：找不到客户经理 {manager_id}", field="manager_id")
    if not manager.active:
        raise InvalidInput(f"manager_id：客户经理 {manager_id} 已离职", field="manager_id")
    return manager


def _checked_custom(values: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    clean, problem = check_custom(
        values, get_profile_settings().custom_attributes, complete=complete
    )
    if problem is not None:
        field, reason = problem
        raise InvalidInput(f"{field}：{reason}", field=field)
    return clean


async def create_customer(
    session: AsyncSession, principal: Principal, data: CustomerCreate
) -> tuple[Customer, Manager | None]:
    if principal.role not in (Role.admin, Role.operator, Role.supervisor):
        raise Forbidden(f"{principal.role.value} 无权新建客户")
    _raise_if_broken(data)
    values = {**NEW_CUSTOMER_DEFAULTS, **data.given()}
    values.setdefault("time_zone", time_zone_of(values["region"]))
    values["custom"] = _checked_custom(values.get("custom") or {}, complete=True)
    _settle_status(values, None)
    _settle_opt_out(values, None)
    manager = await _check_manager(session, values.get("manager_id"))
    if principal.role is Role.supervisor and team_of(manager) != principal.team_id:
        raise Forbidden("主管只能把新客户分配给本团队的客户经理")
    if await repo.customer_exists(session, data.msisdn):
        raise CustomerExists(data.msisdn)
    customer = Customer(**values)
    await repo.add(session, customer)
    assert customer.id is not None
    if customer.manager_id is not None:
        await repo.open_assignment(
            session, customer.id, customer.manager_id, principal.user_id, "新建档案"
        )
    await publish(
        session,
        CustomerCreated(customer=snapshot_of(customer, manager)),
        aggregate_id=customer.msisdn,
        actor=principal.user_id,
    )
    return customer, manager


def _settle_status(values: dict[str, Any], current: Customer | None) -> None:
    """Churn carries its date and moves the lifecycle; reactivation clears both."""
    status = values.get("status")
    if status == CustomerStatus.churned and (current is None or current.status != status):
        values.setdefault("churned_on", today())
        values["lifecycle"] = Lifecycle.churn
    elif status == CustomerStatus.active and current is not None and current.churned_on:
        values.setdefault("churned_on", None)
        values.setdefault("churn_reason", None)


def _settle_opt_out(values: dict[str, Any], current: Customer | None) -> None:
    """Record when the customer opted out of SMS (the time they gave, or now)."""
    if "sms_opt_out" not in values:
        return
    if not values["sms_opt_out"]:
        values["sms_opt_out_at"] = None
    elif values.get("sms_opt_out_at") is None:
        already = current.sms_opt_out_at if current is not None else None
        values["sms_opt_out_at"] = already or clock.now()


async def _visible_customer(
    session: AsyncSession, principal: Principal, msisdn: str, *, for_update: bool = False
) -> tuple[Customer, Manager | None]:
    customer = await repo.get_customer(session, msisdn, for_update=for_update)
    if customer is None:
        raise CustomerNotFound(msisdn)
    manager = await repo.manager_of(session, customer.manager_id)
    if not _may_see(principal, customer, team_of(manager)):
        raise CustomerNotFound(msisdn)  # not 403: do not confirm the number is on file
    return customer, manager


def parse_msisdn(raw: str) -> str:
    try:
        return normalise_lookup(raw)
    except ValueError as exc:
        raise InvalidInput(f"msisdn：{exc}", field="msisdn") from None


async def get_customer(
    session: AsyncSession, principal: Principal, msisdn: str
) -> tuple[Customer, Manager | None]:
    return await _visible_customer(session, principal, parse_msisdn(msisdn))


async def update_customer(
    session: AsyncSession,
    principal: Principal,
    msisdn: str,
    data: CustomerUpdate,
    if_match: int | None,
) -> tuple[Customer, Manager | None]:
    customer, manager = await _visible_customer(
        session, principal, parse_msisdn(msisdn), for_update=True
    )
    _check_may_edit(principal, customer, team_of(manager))
    expected = data.version if data.version is not None else if_match
    if expected is None:
        raise VersionRequired()
    if expected != customer.version:
        raise StaleVersion(expected, customer.version)
    _raise_if_broken(data)
    values = data.given()
    values.pop("version", None)
    if principal.role is Role.manager:
        for field in ("manager_id", "tier"):
            if field in values and values[field] != getattr(customer, field):
                raise Forbidden(f"客户经理不能修改 {field}，请联系主管")
    if "region" in values and "time_zone" not in values and values["region"] != customer.region:
        values["time_zone"] = time_zone_of(values["region"])
    if "custom" in values:
        values["custom"] = _checked_custom({**customer.custom, **values["custom"]}, complete=True)
    _settle_status(values, customer)
    _settle_opt_out(values, customer)
    new_manager = manager
    if "manager_id" in values and values["manager_id"] != customer.manager_id:
        new_manager = await _check_manager(session, values["manager_id"])
        if principal.role is Role.supervisor and team_of(new_manager) != principal.team_id:
            raise Forbidden("主管只能把客户改派给本团队的客户经理")
    changed = sorted(k for k, v in values.items() if getattr(customer, k) != v)
    if not changed:
        return customer, manager
    old = {k: getattr(customer, k) for k in ("tier", "manager_id", "status")}
    for field in changed:
        setattr(customer, field, values[field])
    customer.version += 1
    customer.updated_at = clock.now()
    await session.flush()
    assert customer.id is not None
    actor = principal.user_id
    snapshot = snapshot_of(customer, new_manager)
    await publish(
        session,
        CustomerUpdated(changed=changed, customer=snapshot),
        aggregate_id=customer.msisdn,
        actor=actor,
    )
    if "manager_id" in changed:
        await _reassign_history(session, customer.id, customer.manager_id, actor, "手工调整")
        await publish(
            session,
            ManagerReassigned(
                old_manager_id=old["manager_id"],
                new_manager_id=customer.manager_id,
                customer=snapshot,
            ),
            aggregate_id=customer.msisdn,
            actor=actor,
        )
    if "tier" in changed:
        await publish(
            session,
            TierChanged(
                old_tier=str(old["tier"]),
                new_tier=str(customer.tier),
                reason=f"由 {actor} 手工调整",
                customer=snapshot,
            ),
            aggregate_id=customer.msisdn,
            actor=actor,
        )
    if "status" in changed and customer.status == CustomerStatus.churned:
        assert customer.churned_on is not None
        await publish(
            session,
            CustomerChurned(
                churned_on=customer.churned_on,
                reason=customer.churn_reason or "",
                customer=snapshot,
            ),
            aggregate_id=customer.msisdn,
            actor=actor,
        )
    return customer, new_manager


async def _reassign_history(
    session: AsyncSession, customer_id: int, manager_id: str | None, by: str, reason: str
) -> None:
    await repo.close_assignment(session, customer_id, clock.now())
    if manager_id is not None:
        await repo.open_assignment(session, customer_id, manager_id, by, reason)


async def list_customers(
    session: AsyncSession,
    principal: Principal,
    filters: CustomerFilters,
    cursor: str | None,
    limit: int,
) -> tuple[list[tuple[Customer, Manager | None]], str | None]:
    after = decode_cursor(cursor) if cursor else None
    rows = await repo.list_customers(session, filters, visible_to(principal), after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    managers = await repo.managers_by_id(session, {c.manager_id for c in rows if c.manager_id})
    items = [(c, managers.get(c.manager_id) if c.manager_id else None) for c in rows]
    last_id = rows[-1].id if rows else None
    return items, encode_cursor(last_id) if more and last_id is not None else None


async def assignment_history(session: AsyncSession, principal: Principal, msisdn: str) -> list[Any]:
    customer, _ = await get_customer(session, principal, msisdn)
    assert customer.id is not None
    return await repo.assignments(session, customer.id)


# --- contact log -------------------------------------------------------------------------------


async def add_contact(
    session: AsyncSession, principal: Principal, msisdn: str, data: ContactCreate
) -> tuple[ContactLog, bool]:
    """Append to the log; returns the entry and whether it is new (a repeated
    ``source_ref`` returns the entry recorded the first time)."""
    if principal.role is Role.partner:
        raise Forbidden("合作方不能写入维护记录")
    customer, manager = await _visible_customer(session, principal, parse_msisdn(msisdn))
    _check_may_edit(principal, customer, team_of(manager))  # a colleague's customer: read only
    assert customer.id is not None
    source = f"user:{principal.user_id}"
    values = {
        "customer_id": customer.id,
        "channel": data.channel.value,
        "direction": data.direction.value,
        "at": data.at or clock.now(),
        "by": principal.user_id,
        "outcome": data.outcome.value,
        "note": data.note,
        "source": source,
        "source_ref": data.source_ref,
        "created_at": clock.now(),
    }
    new_id = await repo.insert_contact(session, values)
    if new_id is None:
        assert data.source_ref is not None
        existing = await repo.contact_by_ref(session, source, data.source_ref)
        assert existing is not None
        return existing, False
    entry = await repo.get_contact(session, new_id)
    assert entry is not None
    return entry, True


async def record_reported_contact(session: AsyncSession, entry: ContactLogEntry) -> bool:
    """A contact another service reported (through an event); False for an unknown customer."""
    customer_id = await repo.customer_id_of(session, normalise_lookup(entry.msisdn))
    if customer_id is None:
        return False
    at = entry.at if entry.at.tzinfo is not None else entry.at.replace(tzinfo=UTC)
    await repo.insert_contact(
        session,
        {
            "customer_id": customer_id,
            "channel": ContactChannel(entry.channel).value,
            "direction": ContactDirection(entry.direction).value,
            "at": at,
            "by": entry.by,
            "outcome": ContactOutcome(entry.outcome).value,
            "note": entry.note,
            "source": entry.source,
            "source_ref": entry.source_ref,
            "created_at": clock.now(),
        },
    )
    return True


OPTED_OUT_BY_REPLY = "客户短信回复「{content}」（退订关键词 {keyword}），已设为拒收短信"
ALREADY_OPTED_OUT = "客户短信回复「{content}」（退订关键词 {keyword}），此前已拒收短信"


async def record_opt_out_reply(
    session: AsyncSession,
    *,
    msisdn: str,
    keyword: str,
    content: str,
    received_at: datetime,
    reply_ref: str,
) -> bool:
    """A customer's opt-out reply to care's SMS: the archive records the SMS opt-out (as of
    the reply) and publishes ``customer.updated``; the contact log says why, once per reply
    (``reply_ref``). False for a number not on file."""
    customer = await repo.get_customer(session, normalise_lookup(msisdn), for_update=True)
    if customer is None:
        return False
    assert customer.id is not None
    at = received_at if received_at.tzinfo is not None else received_at.replace(tzinfo=UTC)
    note = ALREADY_OPTED_OUT if customer.sms_opt_out else OPTED_OUT_BY_REPLY
    logged = await repo.insert_contact(
        session,
        {
            "customer_id": customer.id,
            "channel": ContactChannel.sms.value,
            "direction": ContactDirection.inbound.value,
            "at": at,
            "by": "care",
            "outcome": ContactOutcome.refused.value,
            "note": note.format(content=content, keyword=keyword),
            "source": "care",
            "source_ref": reply_ref,
            "created_at": clock.now(),
        },
    )
    if logged is None or customer.sms_opt_out:
        return True  # this reply is recorded already, or there is nothing to change
    customer.sms_opt_out = True
    customer.sms_opt_out_at = at
    customer.version += 1
    customer.updated_at = clock.now()
    await session.flush()
    manager = await repo.manager_of(session, customer.manager_id)
    await publish(
        session,
        CustomerUpdated(
            changed=["sms_opt_out", "sms_opt_out_at"], customer=snapshot_of(customer, manager)
        ),
        aggregate_id=customer.msisdn,
        actor="care",
    )
    return True


async def list_contacts(
    session: AsyncSession, principal: Principal, msisdn: str, cursor: str | None, limit: int
) -> tuple[list[ContactLog], str, str | None]:
    customer, _ = await _visible_customer(session, principal, parse_msisdn(msisdn))
    assert customer.id is not None
    before = decode_cursor(cursor) if cursor else None
    rows = await repo.list_contacts(session, customer.id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].id if rows and more else None
    return rows, customer.msisdn, encode_cursor(last) if last is not None else None


async def reach_report(
    session: AsyncSession,
    principal: Principal,
    period_from: date,
    period_to: date,
    group_by: str,
    team_id: str | None,
    manager_id: str | None,
    tier: str | None,
) -> ReachReport:
    """Service reach rate (服务到达率), the one definition: the share of the VIP customers in
    scope (a manager's, a team's, a tier's; on file during the period) with at least one
    contact-log entry other than a failed delivery in [from, to), Beijing days. The contact
    log holds the API's entries and every contact other services report (care's delivered
    messages and closed tasks, warning follow-ups)."""
    since, until = instants(period_from, period_to)
    if principal.role is Role.partner:
        raise Forbidden("合作方不能查看到达率报表")
    if principal.role is Role.supervisor:
        team_id = principal.team_id
    elif principal.role is Role.manager:
        manager_id, team_id = principal.user_id, None
    scope = repo.scope_condition(manager_id=manager_id, team_id=team_id)
    if manager_id is not None and team_id is not None:
        # Both given by an operator: the manager within that team.
        scope = repo.scope_condition(manager_id=manager_id) & repo.scope_condition(team_id=team_id)
    rows = await repo.reach(session, group_by, since, until, period_from, scope, tier)
    groups = [ReachGroup(group=g, customers=n, reached=r, rate=_rate(r, n)) for g, n, r in rows]
    n, r = sum(g.customers for g in groups), sum(g.reached for g in groups)
    return ReachReport(
        period_from=period_from,
        period_to=period_to,
        group_by=group_by,
        groups=groups,
        total=ReachGroup(group="total", customers=n, reached=r, rate=_rate(r, n)),
    )


def _rate(reached: int, customers: int) -> float:
    return round(reached / customers, 4) if customers else 0.0


# --- VIP base snapshots (拍照) and the retention rate (保有率) ------------------------------

UNASSIGNED = "(unassigned)"


async def take_snapshot(session: AsyncSession, day: date | None, taken_by: str) -> SnapshotTaken:
    """The snapshot of ``day`` (default: today in Beijing), taken from the archive as it is
    now, in the caller's transaction: all of it or none of it. A day taken already is left
    as it is (``created`` False): a snapshot is the record of its day, never rewritten."""
    day = day or today()
    if day > today():
        raise InvalidInput(f"day：{day} 尚未到来，只能为今天或以前的日期拍照", field="day")
    _, until = instants(day, day + timedelta(days=1))
    taken = await repo.insert_snapshot(session, day, until, taken_by, clock.now())
    if taken is not None:
        return SnapshotTaken.model_validate({**taken.model_dump(), "created": True})
    existing = await repo.get_snapshot(session, day)
    assert existing is not None
    return SnapshotTaken.model_validate({**existing.model_dump(), "created": False})


async def take_snapshot_as(session: AsyncSession, principal: Principal, day: date) -> SnapshotTaken:
    if principal.role not in (Role.admin, Role.supervisor):
        raise Forbidden("只有管理员和主管可以为 VIP 客户群拍照")
    return await take_snapshot(session, day, principal.user_id)


async def list_snapshots(
    session: AsyncSession, principal: Principal, limit: int
) -> list[SnapshotRead]:
    if principal.role is Role.partner:
        raise Forbidden("合作方不能查看 VIP 客户群拍照")
    return [SnapshotRead.model_validate(s) for s in await repo.list_snapshots(session, limit)]


def _report_team(principal: Principal, team_id: str | None) -> str | None:
    """The team a report covers: staff of a team see their team's rows whatever they ask
    for; operators and admins all teams, or the one they name."""
    if principal.role is Role.partner:
        raise Forbidden("合作方不能查看保有率报表")
    if principal.role in (Role.supervisor, Role.manager):
        if principal.team_id is None:
            raise Forbidden(f"{principal.role.value} {principal.user_id} 不属于任何团队")
        return principal.team_id
    return team_id


async def retention_report(
    session: AsyncSession,
    principal: Principal,
    period_from: date,
    period_to: date,
    team_id: str | None,
) -> RetentionReport:
    """VIP retention rate (保有率), the one definition: of the active VIPs in the snapshot
    of ``from`` (or the latest one before it), the share that is still an active VIP
    (status active, tier diamond, gold or silver) at ``to``: in the snapshot of ``to`` if
    there is one, else in the live archive when ``to`` is today or later. Churned and
    downgraded (tier none) customers are lost; a move between VIP tiers is not. Rows are
    grouped by the team and manager a customer had at the base snapshot."""
    check_period(period_from, period_to)
    team_id = _report_team(principal, team_id)
    base_day = await repo.latest_snapshot_day(session, period_from)
    if base_day is None:
        raise SnapshotMissing(
            f"from：{period_from} 及以前没有 VIP 客户群拍照，无法计算保有率；"
            "请先拍照（POST /snapshots/{day} 或 keepwell profile snapshot --date）",
            field="from",
        )
    measured_day: date | None = period_to
    if await repo.get_snapshot(session, period_to) is None:
        if period_to < today():
            raise SnapshotMissing(
                f"to：{period_to} 没有 VIP 客户群拍照；过去的日期须有拍照，"
                "今天或以后的日期按当前档案计算",
                field="to",
            )
        measured_day = None
    rows = await repo.retention(session, base_day, measured_day, team_id)
    managers = [
        _retention_row(team or UNASSIGNED, manager or UNASSIGNED, n, r)
        for team, manager, n, r in rows
    ]
    per_team: dict[str, list[int]] = {}
    for row in managers:
        counts = per_team.setdefault(row.team_id, [0, 0])
        counts[0] += row.base
        counts[1] += row.retained
    teams = [_retention_row(t, None, n, r) for t, (n, r) in sorted(per_team.items())]
    n, r = sum(t.base for t in teams), sum(t.retained for t in teams)
    return RetentionReport(
        period_from=period_from,
        period_to=period_to,
        base_snapshot=base_day,
        measured_at="live" if measured_day is None else "snapshot",
        team_id=team_id,
        base=n,
        retained=r,
        lost=n - r,
        rate=_rate(r, n),
        teams=teams,
        managers=managers,
    )


def _retention_row(team: str, manager: str | None, base: int, retained: int) -> RetentionRow:
    return RetentionRow(
        team_id=team,
        manager_id=manager,
        base=base,
        retained=retained,
        lost=base - retained,
        rate=_rate(retained, base),
    )


# --- personal data: what a caller sees, and the audit of unmasked reads ----------------------

PERSONAL_FIELDS = ("msisdn", "family_notes")
"""Personal fields of the archive besides the custom attributes marked ``personal``."""

Served = tuple[int, str, list[str]]
"""(customer id, msisdn, personal fields served unmasked)."""


def _personal_custom() -> frozenset[str]:
    attributes = get_profile_settings().custom_attributes
    return frozenset(name for name, spec in attributes.items() if spec.personal)


def customer_read(customer: Customer, manager: Manager | None) -> CustomerRead:
    """The archive as the API answers it, before :func:`guard_personal` masks it."""
    return CustomerRead.model_validate(
        {
            **customer.model_dump(),
            "team_id": team_of(manager),
            "manager_name": manager.name if manager is not None else None,
            "honorific": honorific(customer.name, str(customer.gender)),
        }
    )


def guard_personal(read: CustomerRead, principal: Principal) -> list[str]:
    """Hide what ``principal`` may not see (callers who see masked numbers get no family
    notes and no personal custom attribute either); return the personal fields ``read``
    now carries in full: what an audit row records."""
    personal = _personal_custom()
    if not sees_numbers(principal):
        read.msisdn = mask_msisdn(read.msisdn)
        read.family_notes = None
        read.custom = {k: v for k, v in read.custom.items() if k not in personal}
        return []
    served = ["msisdn"]
    if read.family_notes:
        served.append("family_notes")
    served += [f"custom.{k}" for k in sorted(read.custom) if k in personal]
    return served


async def audit_reads(
    session: AsyncSession, principal: Principal, action: str, served: list[Served]
) -> None:
    """One audit row per customer whose personal fields this request serves unmasked, in
    one INSERT in the request's transaction (it commits before the response is sent)."""
    merged: dict[int, Served] = {}
    for customer_id, msisdn, fields in served:
        if not fields:
            continue
        _, _, known = merged.setdefault(customer_id, (customer_id, msisdn, []))
        known += [f for f in fields if f not in known]
    who = {
        "at": clock.now(),
        "request_id": current_request_id(),
        "user_id": principal.user_id,
        "role": principal.role.value,
        "caller": principal.caller.value if principal.caller is not None else None,
        "action": action,
    }
    await repo.insert_read_audit(session, who, list(merged.values()))


async def list_read_audit(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: str | None,
    msisdn: str | None,
    period_from: date | None,
    period_to: date | None,
    cursor: str | None,
    limit: int,
) -> AuditReadPage:
    if principal.role is not Role.admin:
        raise Forbidden("只有管理员可以查看个人信息读取审计")
    if period_from is not None and period_to is not None:
        check_period(period_from, period_to)
    since = datetime.combine(period_from, time(), BEIJING) if period_from else None
    until = datetime.combine(period_to, time(), BEIJING) if period_to else None
    rows = await repo.list_read_audit(
        session,
        user_id=user_id,
        msisdn=parse_msisdn(msisdn) if msisdn is not None else None,
        since=since,
        until=until,
        before_id=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].id if rows and more else None
    return AuditReadPage(
        items=[AuditReadRow.model_validate(r) for r in rows],
        next_cursor=encode_cursor(last) if last is not None else None,
    )


# --- teams and managers ------------------------------------------------------------------------


def _check_admin(principal: Principal) -> None:
    if principal.role not in (Role.admin, Role.operator):
        raise Forbidden("只有管理员和运营人员可以管理团队与客户经理")


async def create_team(session: AsyncSession, principal: Principal, data: TeamCreate) -> Team:
    _check_admin(principal)
    if await repo.get_team(session, data.id) is not None:
        raise Conflict(f"团队 {data.id} 已存在", field="id")
    team = Team(**data.model_dump())
    await repo.add(session, team)
    return team


async def get_team(session: AsyncSession, team_id: str) -> Team:
    team = await repo.get_team(session, team_id)
    if team is None:
        raise TeamNotFound(team_id)
    return team


async def update_team(
    session: AsyncSession, principal: Principal, team_id: str, data: TeamUpdate
) -> Team:
    _check_admin(principal)
    team = await get_team(session, team_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field != "supervisor_id":
            raise InvalidInput(f"{field}：可以不填，但不能为 null", field=field)
        setattr(team, field, value)
    await session.flush()
    return team


async def delete_team(session: AsyncSession, principal: Principal, team_id: str) -> None:
    _check_admin(principal)
    team = await get_team(session, team_id)
    if await repo.team_has_managers(session, team_id):
        raise Conflict(f"团队 {team_id} 仍有客户经理，请先调走", field="team_id")
    await repo.delete(session, team)


async def create_manager(
    session: AsyncSession, principal: Principal, data: ManagerCreate
) -> Manager:
    _check_admin(principal)
    await get_team(session, data.team_id)
    if await repo.get_manager(session, data.id) is not None:
        raise Conflict(f"客户经理 {data.id} 已存在", field="id")
    manager = Manager(**data.model_dump())
    await repo.add(session, manager)
    return manager


async def get_manager(
    session: AsyncSession, manager_id: str, *, lock: Literal["update"] | None = None
) -> Manager:
    manager = await repo.get_manager(session, manager_id, lock=lock)
    if manager is None:
        raise ManagerNotFound(manager_id)
    return manager


# Manager fields that customers' snapshots carry, by their name in the snapshot.
SNAPSHOT_OF_MANAGER = {"name": "manager_name", "team_id": "team_id"}


async def update_manager(
    session: AsyncSession, principal: Principal, manager_id: str, data: ManagerUpdate
) -> Manager:
    _check_admin(principal)
    manager = await get_manager(session, manager_id, lock="update")
    values = data.model_dump(exclude_unset=True)
    for field, value in values.items():
        if value is None:
            raise InvalidInput(f"{field}：可以不填，但不能为 null", field=field)
    if "team_id" in values:
        await get_team(session, values["team_id"])
    changed = sorted(
        SNAPSHOT_OF_MANAGER[field]
        for field, value in values.items()
        if field in SNAPSHOT_OF_MANAGER and getattr(manager, field) != value
    )
    for field, value in values.items():
        setattr(manager, field, value)
    await session.flush()
    if changed:
        await _announce_customers_of(session, manager, changed, principal.user_id)
    return manager


async def _announce_customers_of(
    session: AsyncSession, manager: Manager, changed: list[str], actor: str
) -> None:
    """The manager's customers' snapshots changed with the manager: each customer gets a
    new version (consumers keep only newer snapshots) and a ``customer.updated``."""
    customers = await repo.customers_of_manager(session, manager.id)
    now = clock.now()
    for customer in customers:
        customer.version += 1
        customer.updated_at = now
    await session.flush()
    await publish_many(
        session,
        [
            (CustomerUpdated(changed=changed, customer=snapshot_of(c, manager)), c.msisdn)
            for c in customers
        ],
        actor=actor,
    )


async def manager_leaves(
    session: AsyncSession, principal: Principal, manager_id: str, data: ManagerLeave
) -> tuple[Manager, int]:
    """A manager leaves: they are kept (the history names them) but marked as gone, and
    their customers move to ``reassign_to`` or become unassigned. The archive stays."""
    _check_admin(principal)
    manager = await get_manager(session, manager_id, lock="update")
    if not manager.active:
        raise Conflict(f"客户经理 {manager_id} 已离职", field="manager_id")
    successor = None
    if data.reassign_to is not None:
        if data.reassign_to == manager_id:
            raise InvalidInput("reassign_to：须为另一位客户经理", field="reassign_to")
        try:
            successor = await _check_manager(session, data.reassign_to)
        except InvalidInput:
            raise InvalidInput(
                f"reassign_to：没有在职的客户经理 {data.reassign_to}", field="reassign_to"
            ) from None
    customers = await repo.customers_of_manager(session, manager_id)
    for customer in customers:
        assert customer.id is not None
        customer.manager_id = data.reassign_to
        customer.version += 1
        customer.updated_at = clock.now()
        await session.flush()
        await _reassign_history(
            session, customer.id, data.reassign_to, principal.user_id, data.reason
        )
        await publish(
            session,
            ManagerReassigned(
                old_manager_id=manager_id,
                new_manager_id=data.reassign_to,
                customer=snapshot_of(customer, successor),
            ),
            aggregate_id=customer.msisdn,
            actor=principal.user_id,
        )
    manager.active = False
    manager.left_on = today()
    await session.flush()
    return manager, len(customers)


# --- billing and value -------------------------------------------------------------------------


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, for set-based SQL in its transaction."""
    connection = await session.connection()
    # The driver's transaction begins with the first statement SQLAlchemy sends; without
    # one, temporary tables ON COMMIT DROP would vanish at once.
    await connection.execute(select(1))
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def load_billing(
    session: AsyncSession, principal: Principal, entries: list[BillingEntry]
) -> BillingResult:
    from services.profile import bulk_sql

    _check_admin(principal)
    rows = [(e.msisdn, date.fromisoformat(f"{e.month}-01"), e.spend) for e in entries]
    unknown = await bulk_sql.upsert_billing(await driver_connection(session), rows)
    return BillingResult(loaded=len(rows) - unknown, unknown_customers=unknown)


async def recompute_tiers(
    session: AsyncSession, principal: Principal, month: str | None
) -> RecomputeSummary:
    from services.profile.tiers import recompute

    _check_admin(principal)
    try:
        as_of = date.fromisoformat(f"{month}-01") if month else None
    except ValueError:
        raise InvalidInput("month：格式须为 YYYY-MM", field="month") from None
    return await recompute(await driver_connection(session), as_of)
