"""Every query of the complaint service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.complaint.models import (
    OPEN_STATES,
    SCHEMA,
    Action,
    Attachment,
    BusinessCalendarRow,
    CalendarDay,
    CalendarYear,
    Category,
    Compensation,
    CompensationAudit,
    CompensationStatus,
    Customer,
    EscalationContact,
    SlaAlert,
    SlaClock,
    SlaPolicy,
    State,
    Step,
    Ticket,
)
from services.profile.contract import CustomerSnapshot, newest

# -- customers (read model) ---------------------------------------------------------------------


async def upsert_customers(session: AsyncSession, snapshots: Sequence[CustomerSnapshot]) -> int:
    """Apply snapshots (the newest of each customer); one older than (or as old as) what we
    hold changes nothing, but for the customer id a copy kept before it had one (the same
    version fills it)."""
    rows = [
        {
            "msisdn": s.msisdn,
            "version": s.version,
            "name": s.name,
            "honorific": s.honorific,
            "status": s.status,
            "tier": s.tier,
            "manager_id": s.manager_id,
            "team_id": s.team_id,
            "customer_id": s.customer_id,
        }
        for s in newest(snapshots)
    ]
    if not rows:
        return 0
    base = insert(Customer)
    statement = (
        base.values(updated_at=func.now())
        .on_conflict_do_update(
            index_elements=["msisdn"],
            set_={
                **{k: base.excluded[k] for k in rows[0] if k != "msisdn"},
                "updated_at": func.now(),
            },
            where=or_(
                col(Customer.version) < base.excluded.version,
                and_(
                    col(Customer.version) == base.excluded.version,
                    col(Customer.customer_id).is_(None),
                    base.excluded.customer_id.is_not(None),
                ),
            ),
        )
        .returning(col(Customer.msisdn))
    )
    # Many rows, one statement each few hundred (SQLAlchemy's "insertmanyvalues").
    return len((await session.execute(statement, rows)).all())


async def get_customer(session: AsyncSession, msisdn: str) -> Customer | None:
    return await session.get(Customer, msisdn)


async def customer_ids(session: AsyncSession, msisdns: Sequence[str]) -> dict[str, int]:
    """Profile's customer id of each number the copy knows it for."""
    if not msisdns:
        return {}
    result = await session.execute(
        select(col(Customer.msisdn), col(Customer.customer_id)).where(
            col(Customer.msisdn).in_(set(msisdns))
        )
    )
    return {msisdn: id_ for msisdn, id_ in result.all() if id_ is not None}


# -- categories ---------------------------------------------------------------------------------


async def list_categories(session: AsyncSession, include_inactive: bool) -> list[Category]:
    query = select(Category).order_by(col(Category.position), col(Category.code))
    if not include_inactive:
        query = query.where(col(Category.active))
    return list((await session.execute(query)).scalars())


async def get_category(session: AsyncSession, code: str) -> Category | None:
    return await session.get(Category, code)


async def any_category(session: AsyncSession) -> bool:
    return (await session.execute(select(col(Category.code)).limit(1))).first() is not None


async def insert_categories(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(insert(Category).values(list(rows)).on_conflict_do_nothing())


# -- tickets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose tickets a principal reads: everyone's, one team's or one handler's."""

    team_id: str | None = None
    handler_id: str | None = None


def readable(scope: Scope) -> Any:
    """The base select of tickets the scope may read; every read starts from it."""
    query = select(Ticket)
    if scope.team_id is not None:
        query = query.where(col(Ticket.team_id) == scope.team_id)
    if scope.handler_id is not None:
        query = query.where(col(Ticket.handler_id) == scope.handler_id)
    return query


async def next_ticket_id(session: AsyncSession) -> int:
    found = await session.execute(
        text(f"SELECT nextval(pg_get_serial_sequence('{SCHEMA}.ticket', 'id'))")
    )
    return int(found.scalar_one())


async def repeat_facts(
    session: AsyncSession, msisdn: str, category: str, repeat_since: datetime, count_since: datetime
) -> tuple[int | None, int]:
    """(the latest same-category ticket in the repeat window, tickets in the count window)."""
    row = (
        await session.execute(
            text(f"""
            SELECT
              (SELECT id FROM {SCHEMA}.ticket WHERE msisdn = :m AND category = :c
                 AND opened_at >= :rs ORDER BY opened_at DESC, id DESC LIMIT 1) AS latest,
              (SELECT count(*) FROM {SCHEMA}.ticket WHERE msisdn = :m AND opened_at >= :cs) AS n
            """),
            {"m": msisdn, "c": category, "rs": repeat_since, "cs": count_since},
        )
    ).one()
    return row.latest, int(row.n)


@dataclass(frozen=True)
class CreateFacts:
    """What opening a ticket needs to know, read in one round trip."""

    customer_found: bool
    tier: str | None
    manager_id: str | None
    team_id: str | None
    category_active: bool | None  # None: no such category
    latest_same_category: int | None
    recent: int
    policies_stamp: str
    calendar_versions: dict[int, tuple[int, datetime]]


_FACTS_SQL = f"""
SELECT c.msisdn IS NOT NULL AS found, c.tier, c.manager_id, c.team_id,
  (SELECT active FROM {SCHEMA}.category WHERE code = :c) AS category_active,
  (SELECT id FROM {SCHEMA}.ticket WHERE msisdn = :m AND category = :c AND opened_at >= :rs
     ORDER BY opened_at DESC, id DESC LIMIT 1) AS latest,
  (SELECT count(*) FROM {SCHEMA}.ticket WHERE msisdn = :m AND opened_at >= :cs) AS n,
  (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') || ':'
     || coalesce(sum(version), 0) FROM {SCHEMA}.sla_policy) AS stamp,
  (SELECT coalesce(json_agg(json_build_array(id, version, updated_at)), '[]'::json)
     FROM {SCHEMA}.calendar) AS calendars
FROM (SELECT 1) AS one LEFT JOIN {SCHEMA}.customer c ON c.msisdn = :m
"""


async def create_facts(
    session: AsyncSession, msisdn: str, category: str, repeat_since: datetime, count_since: datetime
) -> CreateFacts:
    row = (
        await session.execute(
            text(_FACTS_SQL), {"m": msisdn, "c": category, "rs": repeat_since, "cs": count_since}
        )
    ).one()
    return CreateFacts(
        customer_found=bool(row.found),
        tier=row.tier,
        manager_id=row.manager_id,
        team_id=row.team_id,
        category_active=row.category_active,
        latest_same_category=row.latest,
        recent=int(row.n),
        policies_stamp=str(row.stamp),
        calendar_versions={
            int(i): (int(v), datetime.fromisoformat(u)) for i, v, u in row.calendars
        },
    )


TICKET_COLUMNS = (
    "msisdn", "channel", "category", "description", "severity", "requested_severity", "state",
    "needs", "handler_id", "team_id", "tier", "is_repeat", "repeat_of_id", "policy_id",
    "version", "opened_at", "opened_by", "updated_at", "next_due_at",
    "breached", "reopened_count",
)  # fmt: skip

_INSERT_TICKET_SQL = f"""
WITH n AS (SELECT nextval(pg_get_serial_sequence('{SCHEMA}.ticket', 'id')) AS id)
INSERT INTO {SCHEMA}.ticket (id, number, {", ".join(TICKET_COLUMNS)})
SELECT n.id, 'TS' || :day || lpad(n.id::text, 7, '0'),
  {", ".join("CAST(:needs AS jsonb)" if c == "needs" else f":{c}" for c in TICKET_COLUMNS)}
FROM n
RETURNING id, number
"""


async def insert_ticket_row(
    session: AsyncSession, values: dict[str, Any], day: str
) -> tuple[int, str]:
    """One round trip: the id, the number made from it, the row."""
    params = {c: values[c] for c in TICKET_COLUMNS} | {"day": day}
    found = (await session.execute(text(_INSERT_TICKET_SQL), params)).one()
    return int(found[0]), str(found[1])


async def get_ticket(
    session: AsyncSession, scope: Scope, ticket_id: int, *, for_update: bool = False
) -> Ticket | None:
    query = readable(scope).where(col(Ticket.id) == ticket_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_tickets(session: AsyncSession, scope: Scope, ids: Sequence[int]) -> list[Ticket]:
    """The tickets among ``ids`` the scope may read, by id."""
    query = readable(scope).where(col(Ticket.id).in_(ids)).order_by(col(Ticket.id))
    return list((await session.execute(query)).scalars())


async def list_tickets(
    session: AsyncSession,
    scope: Scope,
    *,
    states: Sequence[State] | None,
    handler_id: str | None,
    team_id: str | None,
    category: str | None,
    severity: str | None,
    breached: bool | None,
    due_before: datetime | None,
    msisdns: Sequence[str] | None,
    after_id: int | None,
    limit: int,
    customer_ids: Sequence[int] | None = None,
) -> list[Ticket]:
    query = readable(scope)
    if states:
        query = query.where(col(Ticket.state).in_(states))
    if handler_id is not None:
        query = query.where(col(Ticket.handler_id) == handler_id)
    if team_id is not None:
        query = query.where(col(Ticket.team_id) == team_id)
    if category is not None:
        query = query.where(col(Ticket.category) == category)
    if severity is not None:
        query = query.where(col(Ticket.severity) == severity)
    if breached is not None:
        query = query.where(col(Ticket.breached) == breached)
    if due_before is not None:
        query = query.where(col(Ticket.next_due_at) < due_before)
    if msisdns is not None:
        query = query.where(col(Ticket.msisdn).in_(msisdns))
    if customer_ids is not None:
        numbers = select(col(Customer.msisdn)).where(col(Customer.customer_id).in_(customer_ids))
        query = query.where(col(Ticket.msisdn).in_(numbers))
    if after_id is not None:
        query = query.where(col(Ticket.id) < after_id)
    query = query.order_by(col(Ticket.id).desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def queue_of(
    session: AsyncSession, handler_id: str, after: tuple[datetime | None, int] | None, limit: int
) -> list[Ticket]:
    """A handler's open tickets, nearest due time first (no due time last)."""
    query = select(Ticket).where(
        col(Ticket.handler_id) == handler_id, col(Ticket.state).in_(OPEN_STATES)
    )
    if after is not None:
        due, last_id = after
        if due is None:
            query = query.where(col(Ticket.next_due_at).is_(None), col(Ticket.id) > last_id)
        else:
            query = query.where(
                or_(
                    col(Ticket.next_due_at) > due,
                    (col(Ticket.next_due_at) == due) & (col(Ticket.id) > last_id),
                    col(Ticket.next_due_at).is_(None),
                )
            )
    query = query.order_by(col(Ticket.next_due_at).asc().nulls_last(), col(Ticket.id)).limit(limit)
    return list((await session.execute(query)).scalars())


async def steps_of(session: AsyncSession, ticket_id: int) -> list[Step]:
    query = select(Step).where(col(Step.ticket_id) == ticket_id).order_by(col(Step.id))
    return list((await session.execute(query)).scalars())


async def actions_of(session: AsyncSession, ticket_id: int) -> list[Action]:
    query = select(Action).where(col(Action.ticket_id) == ticket_id).order_by(col(Action.id))
    return list((await session.execute(query)).scalars())


async def attachments_of(session: AsyncSession, ticket_id: int) -> list[Attachment]:
    query = (
        select(Attachment)
        .where(col(Attachment.ticket_id) == ticket_id)
        .order_by(col(Attachment.id))
    )
    return list((await session.execute(query)).scalars())


async def clocks_of(
    session: AsyncSession, ticket_id: int, *, for_update: bool = False
) -> list[SlaClock]:
    query = select(SlaClock).where(col(SlaClock.ticket_id) == ticket_id).order_by(col(SlaClock.id))
    if for_update:
        query = query.with_for_update()
    return list((await session.execute(query)).scalars())


async def clocks_of_tickets(
    session: AsyncSession, ticket_ids: Sequence[int]
) -> dict[int, list[SlaClock]]:
    """The clocks of several tickets in one query, by ticket."""
    query = (
        select(SlaClock)
        .where(col(SlaClock.ticket_id).in_(ticket_ids))
        .order_by(col(SlaClock.ticket_id), col(SlaClock.id))
    )
    found: dict[int, list[SlaClock]] = {t: [] for t in ticket_ids}
    for c in (await session.execute(query)).scalars():
        found[c.ticket_id].append(c)
    return found


async def policies_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, SlaPolicy]:
    query = select(SlaPolicy).where(col(SlaPolicy.id).in_(ids))
    return {p.id: p for p in (await session.execute(query)).scalars() if p.id is not None}


async def insert_clocks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:  # Core, not the ORM's bulk insert: that splits rows by which values are None
        await session.execute(insert(SlaClock.__table__), list(rows))  # type: ignore[attr-defined]


async def insert_attachments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(Attachment), list(rows))


async def insert_step(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Step), [values])


async def refresh_due(session: AsyncSession, ticket_ids: Sequence[int]) -> None:
    """The ticket's earliest running due time and whether any clock breached."""
    await session.execute(
        text(f"""
        UPDATE {SCHEMA}.ticket t SET
          next_due_at = (SELECT min(due_at) FROM {SCHEMA}.sla_clock c
                          WHERE c.ticket_id = t.id AND c.state = 'running'),
          breached = EXISTS (SELECT 1 FROM {SCHEMA}.sla_clock c WHERE c.ticket_id = t.id
                          AND (c.state = 'breached' OR c.breached_at IS NOT NULL))
        WHERE t.id = ANY(CAST(:ids AS bigint[]))
        """),
        {"ids": list(ticket_ids)},
    )


# -- policies and calendars ---------------------------------------------------------------------


async def policies(session: AsyncSession, *, active_only: bool = True) -> list[SlaPolicy]:
    query = select(SlaPolicy).order_by(col(SlaPolicy.position), col(SlaPolicy.id))
    if active_only:
        query = query.where(col(SlaPolicy.active))
    return list((await session.execute(query)).scalars())


async def calendar_rows(session: AsyncSession) -> list[BusinessCalendarRow]:
    query = select(BusinessCalendarRow).order_by(col(BusinessCalendarRow.id))
    return list((await session.execute(query)).scalars())


async def calendar_versions(session: AsyncSession) -> dict[int, tuple[int, datetime]]:
    rows = await session.execute(text(f"SELECT id, version, updated_at FROM {SCHEMA}.calendar"))
    return {int(r[0]): (int(r[1]), r[2]) for r in rows}


async def calendar_years(session: AsyncSession, calendar_id: int) -> list[CalendarYear]:
    query = (
        select(CalendarYear)
        .where(col(CalendarYear.calendar_id) == calendar_id)
        .order_by(col(CalendarYear.year))
    )
    return list((await session.execute(query)).scalars())


async def calendar_days(
    session: AsyncSession, calendar_id: int, year: int | None = None
) -> list[CalendarDay]:
    query = select(CalendarDay).where(col(CalendarDay.calendar_id) == calendar_id)
    if year is not None:
        query = query.where(
            col(CalendarDay.day) >= date(year, 1, 1), col(CalendarDay.day) <= date(year, 12, 31)
        )
    return list((await session.execute(query.order_by(col(CalendarDay.day)))).scalars())


async def replace_year(
    session: AsyncSession,
    calendar_id: int,
    year: int,
    days: Sequence[dict[str, Any]],
    provisional: bool,
    source: str,
    by: str,
) -> None:
    await session.execute(
        text(f"""DELETE FROM {SCHEMA}.calendar_day WHERE calendar_id = :c
                 AND day BETWEEN :a AND :b"""),
        {"c": calendar_id, "a": date(year, 1, 1), "b": date(year, 12, 31)},
    )
    if days:
        await session.execute(
            insert(CalendarDay).values([{"calendar_id": calendar_id, **d} for d in days])
        )
    statement = insert(CalendarYear).values(
        calendar_id=calendar_id,
        year=year,
        provisional=provisional,
        source=source,
        loaded_by=by,
        loaded_at=func.now(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["calendar_id", "year"],
            set_={
                "provisional": provisional,
                "source": source,
                "loaded_by": by,
                "loaded_at": func.now(),
            },
        )
    )
    await session.execute(
        text(
            f"UPDATE {SCHEMA}.calendar SET version = version + 1, updated_at = now() WHERE id = :c"
        ),
        {"c": calendar_id},
    )


async def running_clocks(
    session: AsyncSession, *, calendar_id: int | None = None, policy_id: int | None = None
) -> list[SlaClock]:
    query = select(SlaClock).where(col(SlaClock.state).in_(["running", "paused", "waiting"]))
    if calendar_id is not None:
        query = query.where(col(SlaClock.calendar_id) == calendar_id)
    if policy_id is not None:
        query = query.where(col(SlaClock.policy_id) == policy_id)
    return list(
        (await session.execute(query.order_by(col(SlaClock.id)).with_for_update())).scalars()
    )


# -- escalation ---------------------------------------------------------------------------------


async def escalation_contacts(session: AsyncSession) -> list[EscalationContact]:
    query = select(EscalationContact).order_by(col(EscalationContact.team_id))
    return list((await session.execute(query)).scalars())


async def upsert_escalation_contact(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(EscalationContact).values(**values, updated_at=func.now())
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["team_id"],
            set_={k: statement.excluded[k] for k in values if k != "team_id"}
            | {"updated_at": func.now()},
        )
    )


SWEEP_SQL = f"""
WITH picked AS (
    SELECT c.id, c.ticket_id, c.metric, c.cycle, c.due_at, c.alert_level
    FROM {SCHEMA}.sla_clock c
    WHERE c.next_alert_at <= :now
    ORDER BY c.next_alert_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), fired AS (
    SELECT p.id AS clock_id, p.ticket_id, p.metric, p.cycle, p.due_at, l.level
    FROM picked p
    CROSS JOIN (VALUES (1, -CAST(:lead AS interval)), (2, interval '0'),
                       (3, CAST(:later AS interval))) AS l(level, shift)
    WHERE l.level > p.alert_level AND p.due_at + l.shift <= :now
      AND (l.level <> 1 OR p.due_at > :now)
), written AS (
    INSERT INTO {SCHEMA}.sla_alert (ticket_id, metric, level, cycle, due_at, target_id, fired_at)
    SELECT f.ticket_id, f.metric, f.level, f.cycle, f.due_at,
           CASE f.level WHEN 1 THEN t.handler_id
                        WHEN 2 THEN e.supervisor_id
                        ELSE coalesce(e.escalation_manager_id, :default_manager) END,
           :now
    FROM fired f
    JOIN {SCHEMA}.ticket t ON t.id = f.ticket_id
    LEFT JOIN {SCHEMA}.escalation_contact e ON e.team_id = t.team_id
    ON CONFLICT (ticket_id, metric, level, cycle) DO NOTHING
    RETURNING id, ticket_id, metric, level, cycle, due_at, target_id
), moved AS (
    UPDATE {SCHEMA}.sla_clock c SET
        alert_level = greatest(c.alert_level, m.top),
        next_alert_at = CASE greatest(c.alert_level, m.top)
            WHEN 1 THEN c.due_at
            WHEN 2 THEN c.due_at + CAST(:later AS interval)
            ELSE NULL END,
        breached_at = CASE WHEN m.top >= 2 THEN coalesce(c.breached_at, :now)
                           ELSE c.breached_at END
    FROM (SELECT clock_id, max(level) AS top FROM fired GROUP BY clock_id) m
    WHERE c.id = m.clock_id
    RETURNING c.id
), flagged AS (
    UPDATE {SCHEMA}.ticket t SET breached = true
    WHERE t.id IN (SELECT ticket_id FROM fired WHERE level >= 2) AND NOT t.breached
    RETURNING t.id
)
SELECT (SELECT count(*) FROM picked) AS picked,
       (SELECT count(*) FROM moved) AS moved,
       (SELECT count(*) FROM flagged) AS flagged,
       coalesce((
         SELECT json_agg(json_build_object(
           'id', w.id, 'ticket_id', w.ticket_id, 'metric', w.metric, 'level', w.level,
           'cycle', w.cycle, 'due_at', w.due_at, 'target_id', w.target_id,
           'number', t.number, 'msisdn', t.msisdn, 'handler_id', t.handler_id,
           'team_id', t.team_id) ORDER BY w.id)
         FROM written w JOIN {SCHEMA}.ticket t ON t.id = w.ticket_id), '[]'::json) AS alerts
"""


async def sweep_once(
    session: AsyncSession,
    now: datetime,
    lead_seconds: float,
    later_seconds: float,
    default_manager: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """One set-based pass: (alerts written, clocks picked). A clock whose alert another
    sweeper already wrote conflicts on the unique key and writes nothing."""
    row = (
        await session.execute(
            text(SWEEP_SQL),
            {
                "now": now,
                "lead": timedelta(seconds=lead_seconds),
                "later": timedelta(seconds=later_seconds),
                "default_manager": default_manager,
                "limit": limit,
            },
        )
    ).one()
    found: list[dict[str, Any]] = list(row.alerts)
    return found, int(row.picked)


async def alerts(
    session: AsyncSession, scope: Scope, target_id: str | None, limit: int
) -> list[Any]:
    query = text(f"""
        SELECT a.id, a.ticket_id, t.number, a.metric, a.level, a.cycle, a.due_at,
               a.target_id, a.fired_at
        FROM {SCHEMA}.sla_alert a JOIN {SCHEMA}.ticket t ON t.id = a.ticket_id
        WHERE (CAST(:team AS text) IS NULL OR t.team_id = :team)
          AND (CAST(:handler AS text) IS NULL OR t.handler_id = :handler)
          AND (CAST(:target AS text) IS NULL OR a.target_id = :target)
        ORDER BY a.id DESC LIMIT :limit
    """)
    params = {
        "team": scope.team_id,
        "handler": scope.handler_id,
        "target": target_id,
        "limit": limit,
    }
    return list(await session.execute(query, params))


async def alerts_of(session: AsyncSession, ticket_id: int) -> list[SlaAlert]:
    query = select(SlaAlert).where(col(SlaAlert.ticket_id) == ticket_id).order_by(col(SlaAlert.id))
    return list((await session.execute(query)).scalars())


# -- compensation -------------------------------------------------------------------------------


async def get_compensation(
    session: AsyncSession, compensation_id: int, *, for_update: bool = False
) -> Compensation | None:
    query = select(Compensation).where(col(Compensation.id) == compensation_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def compensations_of(session: AsyncSession, ticket_id: int) -> list[Compensation]:
    query = (
        select(Compensation)
        .where(col(Compensation.ticket_id) == ticket_id)
        .order_by(col(Compensation.id))
    )
    return list((await session.execute(query)).scalars())


async def audit_of(
    session: AsyncSession, compensation_ids: Sequence[int]
) -> list[CompensationAudit]:
    query = (
        select(CompensationAudit)
        .where(col(CompensationAudit.compensation_id).in_(compensation_ids))
        .order_by(col(CompensationAudit.id))
    )
    return list((await session.execute(query)).scalars())


async def add_audit(session: AsyncSession, entry: CompensationAudit) -> None:
    session.add(entry)
    await session.flush()


async def customer_compensation(
    session: AsyncSession, msisdn: str, since: datetime
) -> tuple[int, int, int]:
    """(executed fen, pending fen, count) for a customer since ``since``."""
    row = (
        await session.execute(
            text(f"""
            SELECT coalesce(sum(amount_fen) FILTER (WHERE status = 'executed'), 0) AS done,
                   coalesce(sum(amount_fen) FILTER (WHERE status IN ('requested', 'approved')), 0)
                     AS pending,
                   count(*) FILTER (WHERE status <> 'rejected') AS n
            FROM {SCHEMA}.compensation WHERE msisdn = :m AND requested_at >= :since
            """),
            {"m": msisdn, "since": since},
        )
    ).one()
    return int(row.done), int(row.pending), int(row.n)


EXECUTABLE = (CompensationStatus.approved,)


# -- personal data (PIPL): erasure and retention ------------------------------------------------

ERASED_TEXT = "[已删除]"
# The step data that is what people said or wrote (emotion heard, findings, what was agreed
# or disputed, actions' wording, a low score's reason); the rest (responsibility,
# satisfaction, channel, ids) is kept for the reports.
STEP_TEXT_KEYS = ("emotion", "findings", "agreed", "disagreements", "actions", "reason")


async def blank_ticket_texts(session: AsyncSession, ticket_ids: Sequence[int]) -> dict[str, int]:
    """The free text of these tickets, their steps, actions and compensations (their audit
    rows' reasons too: the caller opens :func:`services.kit.erasure.audit_rewrite`)."""
    ids = {"ids": list(ticket_ids), "erased": ERASED_TEXT, "keys": list(STEP_TEXT_KEYS)}
    statements = {
        "tickets": "UPDATE complaint.ticket SET description = :erased, "
        "satisfaction_reason = NULL WHERE id = ANY(:ids)",
        "steps": "UPDATE complaint.step SET notes = '', data = data - CAST(:keys AS text[]) "
        "WHERE ticket_id = ANY(:ids)",
        "actions": "UPDATE complaint.action SET description = :erased, note = '' "
        "WHERE ticket_id = ANY(:ids)",
        "compensations": "UPDATE complaint.compensation SET reason = :erased "
        "WHERE ticket_id = ANY(:ids)",
        "compensation_audit": "UPDATE complaint.compensation_audit a SET reason = '' "
        "FROM complaint.compensation c WHERE a.compensation_id = c.id "
        "AND c.ticket_id = ANY(:ids) AND a.reason <> ''",
    }
    counts = {}
    for kind, sql in statements.items():
        result = await session.execute(text(sql), ids)
        counts[kind] = int(getattr(result, "rowcount", 0) or 0)
    return counts


async def tickets_of(session: AsyncSession, msisdn: str) -> list[int]:
    query = select(col(Ticket.id)).where(col(Ticket.msisdn) == msisdn)
    return [i for i in (await session.execute(query)).scalars() if i is not None]


async def closed_with_text_before(session: AsyncSession, before: datetime, limit: int) -> list[int]:
    """Tickets closed before ``before`` whose text is not blanked yet, oldest first, locked
    ``SKIP LOCKED`` so two runs take different ones."""
    query = (
        select(col(Ticket.id))
        .where(
            col(Ticket.state) == State.closed,
            col(Ticket.closed_at) < before,
            col(Ticket.description) != ERASED_TEXT,
        )
        .order_by(col(Ticket.closed_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [i for i in (await session.execute(query)).scalars() if i is not None]


# What complaint holds about one customer (the access right; `keepwell export` joins every
# service's part into one document).
EXPORT_QUERIES = {
    "customer": "SELECT * FROM complaint.customer WHERE msisdn = :m",
    "tickets": "SELECT * FROM complaint.ticket WHERE msisdn = :m ORDER BY id",
    "steps": "SELECT s.* FROM complaint.step s JOIN complaint.ticket t ON t.id = s.ticket_id "
    "WHERE t.msisdn = :m ORDER BY s.id",
    "actions": "SELECT a.* FROM complaint.action a JOIN complaint.ticket t "
    "ON t.id = a.ticket_id WHERE t.msisdn = :m ORDER BY a.id",
    "compensations": "SELECT * FROM complaint.compensation WHERE msisdn = :m ORDER BY id",
}
