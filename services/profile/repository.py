"""Every query of the profile service that goes through the ORM session.

Set-based work on an asyncpg connection (bulk import, monthly recompute) lives in
``bulk_sql.py``: it needs COPY and temporary tables, not the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Result,
    SQLColumnExpression,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.profile.contract import ContactOutcome
from services.profile.models import (
    BillingMonth,
    ContactLog,
    Customer,
    CustomerStatus,
    Erasure,
    ErasureStatus,
    Manager,
    ManagerAssignment,
    ReadAudit,
    Snapshot,
    SnapshotCustomer,
    Team,
    Tier,
    TierChange,
)


@dataclass(frozen=True)
class CustomerFilters:
    manager_id: str | None = None
    team_id: str | None = None
    tier: str | None = None
    service_level: str | None = None
    lifecycle: str | None = None
    region: str | None = None
    status: str | None = None
    birthday_month: int | None = None
    name_contains: str | None = None
    msisdns: tuple[str, ...] | None = None  # normalised numbers; the batched read
    ids: tuple[int, ...] | None = None  # the batched read by id
    tag: str | None = None


def _team_of_manager(team_id: str) -> ColumnElement[bool]:
    managers = select(col(Manager.id)).where(col(Manager.team_id) == team_id)
    return col(Customer.manager_id).in_(managers)


def scope_condition(
    *, manager_id: str | None = None, team_id: str | None = None
) -> ColumnElement[bool]:
    """Customers of a manager, or of a team's managers, or all (neither given)."""
    conditions = []
    if manager_id is not None:
        conditions.append(col(Customer.manager_id) == manager_id)
    if team_id is not None:
        conditions.append(_team_of_manager(team_id))
    return or_(*conditions) if conditions else true()


def _filter_conditions(f: CustomerFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    simple = {
        "manager_id": f.manager_id,
        "tier": f.tier,
        "service_level": f.service_level,
        "lifecycle": f.lifecycle,
        "region": f.region,
        "status": f.status,
    }
    for name, value in simple.items():
        if value is not None:
            conditions.append(getattr(Customer, name) == value)
    if f.msisdns is not None:
        conditions.append(col(Customer.msisdn).in_(f.msisdns))
    if f.ids is not None:
        conditions.append(col(Customer.id).in_(f.ids))
    if f.team_id is not None:
        conditions.append(_team_of_manager(f.team_id))
    if f.tag is not None:
        conditions.append(col(Customer.tags).contains([f.tag]))
    if f.birthday_month is not None:
        conditions.append(func.extract("month", col(Customer.birthday)) == f.birthday_month)
    if f.name_contains:
        escaped = f.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(col(Customer.name).ilike(f"%{escaped}%", escape="\\"))
    return conditions


async def get_customer(
    session: AsyncSession, msisdn: str, *, for_update: bool = False
) -> Customer | None:
    query = select(Customer).where(col(Customer.msisdn) == msisdn)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def customer_exists(session: AsyncSession, msisdn: str) -> bool:
    query = select(exists().where(col(Customer.msisdn) == msisdn))
    return bool((await session.execute(query)).scalar())


async def manager_of(session: AsyncSession, manager_id: str | None) -> Manager | None:
    return await session.get(Manager, manager_id) if manager_id is not None else None


async def managers_by_id(session: AsyncSession, manager_ids: set[str]) -> dict[str, Manager]:
    if not manager_ids:
        return {}
    query = select(Manager).where(col(Manager.id).in_(manager_ids))
    return {m.id: m for m in (await session.execute(query)).scalars()}


async def list_customers(
    session: AsyncSession,
    filters: CustomerFilters,
    visible: ColumnElement[bool],
    after_id: int | None,
    limit: int,
) -> list[Customer]:
    """Keyset pagination by id: rows inserted meanwhile get larger ids and so never shift
    a page that was already served, nor appear twice."""
    query = select(Customer).where(visible, *_filter_conditions(filters))
    if after_id is not None:
        query = query.where(col(Customer.id) > after_id)
    query = query.order_by(col(Customer.id)).limit(limit)
    return list((await session.execute(query)).scalars())


async def add(session: AsyncSession, row: Any) -> None:
    session.add(row)
    await session.flush()


async def open_assignment(
    session: AsyncSession, customer_id: int, manager_id: str, by: str, reason: str | None
) -> None:
    session.add(
        ManagerAssignment(
            customer_id=customer_id, manager_id=manager_id, assigned_by=by, reason=reason
        )
    )
    await session.flush()


async def close_assignment(session: AsyncSession, customer_id: int, at: datetime) -> None:
    await session.execute(
        update(ManagerAssignment)
        .where(
            col(ManagerAssignment.customer_id) == customer_id,
            col(ManagerAssignment.ended_at).is_(None),
        )
        .values(ended_at=at)
    )


async def assignments(session: AsyncSession, customer_id: int) -> list[ManagerAssignment]:
    query = (
        select(ManagerAssignment)
        .where(col(ManagerAssignment.customer_id) == customer_id)
        .order_by(col(ManagerAssignment.started_at), col(ManagerAssignment.id))
    )
    return list((await session.execute(query)).scalars())


async def insert_contact(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Append a contact-log entry; None when its (source, source_ref) is recorded already."""
    statement = (
        insert(ContactLog)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "source_ref"])
        .returning(col(ContactLog.id))
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_contact(session: AsyncSession, contact_id: int) -> ContactLog | None:
    return await session.get(ContactLog, contact_id)


async def contact_by_ref(session: AsyncSession, source: str, source_ref: str) -> ContactLog | None:
    query = select(ContactLog).where(
        col(ContactLog.source) == source, col(ContactLog.source_ref) == source_ref
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_contacts(
    session: AsyncSession, customer_id: int, before_id: int | None, limit: int
) -> list[ContactLog]:
    """Newest first, keyset by id."""
    query = select(ContactLog).where(col(ContactLog.customer_id) == customer_id)
    if before_id is not None:
        query = query.where(col(ContactLog.id) < before_id)
    query = query.order_by(col(ContactLog.id).desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def customer_id_of(session: AsyncSession, msisdn: str) -> int | None:
    query = select(col(Customer.id)).where(col(Customer.msisdn) == msisdn)
    return (await session.execute(query)).scalar_one_or_none()


async def reach(
    session: AsyncSession,
    group_by: str,
    since: datetime,
    until: datetime,
    period_start: date,
    scope: ColumnElement[bool],
    tier: str | None,
) -> list[tuple[str, int, int]]:
    """(group, customers in scope, customers with a contact in [since, until))."""
    group: SQLColumnExpression[str] = {
        "manager": func.coalesce(col(Customer.manager_id), "(unassigned)"),
        "team": func.coalesce(col(Manager.team_id), "(unassigned)"),
        "tier": col(Customer.tier),
    }[group_by]
    contacted = exists().where(
        col(ContactLog.customer_id) == col(Customer.id),
        col(ContactLog.at) >= since,
        col(ContactLog.at) < until,
        # A message that never arrived reached nobody.
        col(ContactLog.outcome) != ContactOutcome.failed.value,
    )
    in_period = or_(
        col(Customer.status) == CustomerStatus.active.value,
        col(Customer.churned_on) >= period_start,
    )
    # VIP customers only: the reach rate is a KPI of VIP care (tier none is not a member).
    vip = col(Customer.tier) != Tier.none.value
    conditions = [in_period, vip, scope, col(Customer.created_at) < until]
    if tier is not None:
        conditions.append(col(Customer.tier) == tier)
    rows: Result[Any] = await session.execute(
        select(
            group.label("g"),
            func.count().label("customers"),
            func.count().filter(contacted).label("reached"),
        )
        .select_from(Customer)
        .outerjoin(Manager, col(Manager.id) == col(Customer.manager_id))
        .where(and_(*conditions))
        .group_by(group)
        .order_by(group)
    )
    return [(str(r.g), int(r.customers), int(r.reached)) for r in rows]


async def get_team(session: AsyncSession, team_id: str) -> Team | None:
    return await session.get(Team, team_id)


async def list_teams(session: AsyncSession, ids: Sequence[str] | None = None) -> list[Team]:
    """All teams, or only those of ``ids`` (unknown ids are left out)."""
    query = select(Team)
    if ids is not None:
        query = query.where(col(Team.id).in_(ids))
    return list((await session.execute(query.order_by(col(Team.id)))).scalars())


async def team_has_managers(session: AsyncSession, team_id: str) -> bool:
    query = select(exists().where(col(Manager.team_id) == team_id))
    return bool((await session.execute(query)).scalar())


async def delete(session: AsyncSession, row: Any) -> None:
    await session.delete(row)
    await session.flush()


async def get_manager(
    session: AsyncSession, manager_id: str, *, lock: Literal["share", "update"] | None = None
) -> Manager | None:
    """``lock`` holds the manager's row until commit. Changes to a manager that rewrite their
    customers' snapshots lock it for update before any customer; whoever puts a customer
    under a manager holds it shared, so the two never interleave."""
    if lock is None:
        return await session.get(Manager, manager_id)
    return await session.get(Manager, manager_id, with_for_update={"read": lock == "share"})


async def list_managers(
    session: AsyncSession,
    team_id: str | None,
    include_inactive: bool,
    ids: Sequence[str] | None = None,
) -> list[Manager]:
    query = select(Manager)
    if ids is not None:
        query = query.where(col(Manager.id).in_(ids))
    if team_id is not None:
        query = query.where(col(Manager.team_id) == team_id)
    if not include_inactive:
        query = query.where(col(Manager.active))
    return list((await session.execute(query.order_by(col(Manager.id)))).scalars())


async def customers_of_manager(session: AsyncSession, manager_id: str) -> list[Customer]:
    query = (
        select(Customer)
        .where(col(Customer.manager_id) == manager_id)
        .order_by(col(Customer.id))
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


# --- VIP base snapshots (拍照) and retention (保有率) ----------------------------------------


async def insert_snapshot(
    session: AsyncSession, day: date, until: datetime, taken_by: str, taken_at: datetime
) -> Snapshot | None:
    """Take the snapshot of ``day``: the VIP customers (tier other than none) on file that
    day (active, or churned on ``day`` or later) and created before ``until``, with their
    tier, team, manager and status as the archive holds them now. Two statements in the
    caller's transaction: the header row, then one INSERT ... SELECT of every customer.

    None when ``day`` is taken already: the header's primary key makes a second take (even
    a concurrent one, which waits for the first to commit) a no-op."""
    header = (
        insert(Snapshot)
        .values(day=day, taken_at=taken_at, taken_by=taken_by, customers=0)
        .on_conflict_do_nothing(index_elements=["day"])
        .returning(col(Snapshot.day))
    )
    if (await session.execute(header)).scalar_one_or_none() is None:
        return None
    vip_on_file = (
        select(
            literal(day).label("day"),
            col(Customer.id),
            col(Customer.msisdn),
            col(Customer.tier),
            col(Manager.team_id),
            col(Customer.manager_id),
            col(Customer.status),
        )
        .select_from(Customer)
        .outerjoin(Manager, col(Manager.id) == col(Customer.manager_id))
        .where(
            col(Customer.tier) != Tier.none.value,
            or_(
                col(Customer.status) == CustomerStatus.active.value,
                col(Customer.churned_on) >= day,
            ),
            col(Customer.created_at) < until,
        )
    )
    columns = ["day", "customer_id", "msisdn", "tier", "team_id", "manager_id", "status"]
    result: Any = await session.execute(insert(SnapshotCustomer).from_select(columns, vip_on_file))
    count = int(result.rowcount)
    await session.execute(update(Snapshot).where(col(Snapshot.day) == day).values(customers=count))
    return Snapshot(day=day, taken_at=taken_at, taken_by=taken_by, customers=count)


async def get_snapshot(session: AsyncSession, day: date) -> Snapshot | None:
    return await session.get(Snapshot, day)


async def latest_snapshot_day(session: AsyncSession, on_or_before: date) -> date | None:
    query = select(func.max(col(Snapshot.day))).where(col(Snapshot.day) <= on_or_before)
    return (await session.execute(query)).scalar_one_or_none()


async def list_snapshots(session: AsyncSession, limit: int) -> list[Snapshot]:
    query = select(Snapshot).order_by(col(Snapshot.day).desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def retention(
    session: AsyncSession, base_day: date, measured_day: date | None, team_id: str | None
) -> list[tuple[str | None, str | None, int, int]]:
    """(team, manager, base, retained) of the active VIPs in the snapshot of ``base_day``
    (by the team and manager they had then), ``team_id``'s only when given. Retained: still
    an active VIP (status active, tier other than none) in the snapshot of ``measured_day``,
    or in the live archive when ``measured_day`` is None."""
    base = SnapshotCustomer.__table__.alias("base")  # type: ignore[attr-defined]
    if measured_day is None:
        still = exists().where(
            col(Customer.id) == base.c.customer_id,
            col(Customer.status) == CustomerStatus.active.value,
            col(Customer.tier) != Tier.none.value,
        )
    else:
        later = SnapshotCustomer.__table__.alias("later")  # type: ignore[attr-defined]
        still = exists().where(
            later.c.day == measured_day,
            later.c.customer_id == base.c.customer_id,
            later.c.status == CustomerStatus.active.value,
            later.c.tier != Tier.none.value,
        )
    conditions = [base.c.day == base_day, base.c.status == CustomerStatus.active.value]
    if team_id is not None:
        conditions.append(base.c.team_id == team_id)
    rows: Result[Any] = await session.execute(
        select(
            base.c.team_id,
            base.c.manager_id,
            func.count().label("base"),
            func.count().filter(still).label("retained"),
        )
        .where(*conditions)
        .group_by(base.c.team_id, base.c.manager_id)
        .order_by(base.c.team_id, base.c.manager_id)
    )
    return [(r.team_id, r.manager_id, int(r.base), int(r.retained)) for r in rows]


# --- audit of unmasked reads of personal data ----------------------------------------------

FIELD_SEPARATOR = "\x1f"  # never in a field name

_INSERT_READ_AUDIT = text(
    "INSERT INTO profile.read_audit "
    "(at, request_id, user_id, role, caller, action, customer_id, msisdn, fields) "
    "SELECT :at, :request_id, :user_id, :role, :caller, :action, r.customer_id, r.msisdn, "
    "string_to_array(r.fields, :separator) "
    "FROM unnest(CAST(:customer_ids AS bigint[]), CAST(:msisdns AS text[]), "
    "CAST(:fields AS text[])) AS r(customer_id, msisdn, fields)"
)


async def insert_read_audit(
    session: AsyncSession,
    who: dict[str, Any],
    served: list[tuple[int, str, list[str]]],
) -> None:
    """One row per (customer id, msisdn, fields served) in one statement: the arrays travel
    as three parameters however many customers a page holds. ``who`` gives at, request_id,
    user_id, role, caller and action."""
    if not served:
        return
    await session.execute(
        _INSERT_READ_AUDIT,
        {
            **who,
            "customer_ids": [s[0] for s in served],
            "msisdns": [s[1] for s in served],
            "fields": [FIELD_SEPARATOR.join(s[2]) for s in served],
            "separator": FIELD_SEPARATOR,
        },
    )


async def list_read_audit(
    session: AsyncSession,
    *,
    user_id: str | None,
    msisdn: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[ReadAudit]:
    """Newest first, keyset by id."""
    query = select(ReadAudit)
    if user_id is not None:
        query = query.where(col(ReadAudit.user_id) == user_id)
    if msisdn is not None:
        query = query.where(col(ReadAudit.msisdn) == msisdn)
    if since is not None:
        query = query.where(col(ReadAudit.at) >= since)
    if until is not None:
        query = query.where(col(ReadAudit.at) < until)
    if before_id is not None:
        query = query.where(col(ReadAudit.id) < before_id)
    query = query.order_by(col(ReadAudit.id).desc()).limit(limit)
    return list((await session.execute(query)).scalars())


# -- erasure (PIPL) ---------------------------------------------------------------------------


async def get_customer_by_id(
    session: AsyncSession, customer_id: int, *, for_update: bool = False
) -> Customer | None:
    return await session.get(Customer, customer_id, with_for_update=for_update)


async def get_erasure(
    session: AsyncSession, erasure_id: int, *, for_update: bool = False
) -> Erasure | None:
    return await session.get(Erasure, erasure_id, with_for_update=for_update)


async def open_erasure_of(session: AsyncSession, customer_id: int) -> Erasure | None:
    query = select(Erasure).where(
        col(Erasure.customer_id) == customer_id, col(Erasure.status) != ErasureStatus.completed
    )
    return (await session.execute(query)).scalar_one_or_none()


async def erase_customer_rows(
    session: AsyncSession, customer_id: int, msisdn: str, stand_in: str
) -> dict[str, int]:
    """The contact log's free text, and the number where history keeps it (snapshots, the
    read audit: rows kept, so counts and rates stay as they were). Rows changed, by kind."""
    notes = await session.execute(
        update(ContactLog)
        .where(col(ContactLog.customer_id) == customer_id, col(ContactLog.note).is_not(None))
        .values(note=None)
    )
    snapshots = await session.execute(
        update(SnapshotCustomer)
        .where(col(SnapshotCustomer.customer_id) == customer_id)
        .values(msisdn=stand_in)
    )
    audit = await session.execute(
        update(ReadAudit).where(col(ReadAudit.msisdn) == msisdn).values(msisdn=stand_in)
    )
    return {
        "contact_notes": _count(notes),
        "snapshot_rows": _count(snapshots),
        "read_audit_rows": _count(audit),
    }


def _count(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def erasure_event_msisdn(session: AsyncSession, erasure_id: int) -> str | None:
    """The number an erasure's ``customer.erased`` event still carries (until scrubbed)."""
    return (
        await session.execute(
            text(
                "SELECT payload->>'msisdn' FROM profile.outbox WHERE type = 'customer.erased' "
                "AND (payload->>'erasure_id')::bigint = :id"
            ),
            {"id": erasure_id},
        )
    ).scalar_one_or_none()


async def anonymise_old_contact_notes(session: AsyncSession, before: datetime, batch: int) -> int:
    """One batch of contact-log notes older than ``before`` set to NULL; rows taken by a
    concurrent run are skipped (``SKIP LOCKED``), so two workers never wait on each other."""
    result = await session.execute(
        text("""
        UPDATE profile.contact_log SET note = NULL WHERE id IN (
          SELECT id FROM profile.contact_log
          WHERE at < :before AND note IS NOT NULL
          ORDER BY at LIMIT :batch FOR UPDATE SKIP LOCKED)
        """),
        {"before": before, "batch": batch},
    )
    return _count(result)


async def billing_of(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    query = (
        select(col(BillingMonth.month), col(BillingMonth.spend))
        .where(col(BillingMonth.customer_id) == customer_id)
        .order_by(col(BillingMonth.month))
    )
    return [
        {"month": r.month.isoformat(), "spend": f"{r.spend:.2f}"}
        for r in await session.execute(query)
    ]


async def tier_changes_of(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    query = (
        select(TierChange)
        .where(col(TierChange.customer_id) == customer_id)
        .order_by(col(TierChange.computed_at))
    )
    return [
        c.model_dump(mode="json", exclude={"id", "customer_id"})
        for c in (await session.execute(query)).scalars()
    ]
