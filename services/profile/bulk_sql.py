"""Set-based SQL of the profile service, on a plain asyncpg connection: the bulk import
(COPY into a temporary table, then INSERT/UPDATE ... SELECT) and its events.

Events are written the way :func:`services.kit.events.publish.publish` writes them (an
outbox row and one delivery per subscriber), but for all rows in one statement.
"""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

from services.kit.events.publish import service_subscribers
from services.profile.config import get_profile_settings
from services.profile.models import SCHEMA, Customer, events
from services.profile.schemas import REQUIRED_FOR_NEW, CustomerFields, ImportIssue
from services.profile.validation import COMPOUND_SURNAMES

FIELDS: tuple[str, ...] = tuple(CustomerFields.model_fields)
BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(FIELDS)}
JSON_COLUMNS = frozenset(
    {"interests", "tags", "preferences", "taboos", "important_dates", "contact_channels", "custom"}
)
DATE_COLUMNS = frozenset({"birthday", "join_date", "contract_end", "churned_on"})
IMPORT_REASON = "批量导入"

# What a new customer gets for a field its row does not carry (SQL literals).
_NEW_DEFAULTS: dict[str, str] = {
    "gender": "'unknown'",
    "balance": "0",
    "status": "'active'",
    "tier": "'none'",
    "service_level": "'C'",
    "lifecycle": "'acquisition'",
    "time_zone": "'Asia/Shanghai'",
    "preferred_hours_start": "9",
    "preferred_hours_end": "21",
    "do_not_disturb": "false",
    "sms_opt_out": "false",
    **dict.fromkeys(JSON_COLUMNS - {"custom"}, "'[]'::jsonb"),
    "custom": "'{}'::jsonb",
}

_T = f"{SCHEMA}.customer"
# One encoder for every row: json.dumps with an option builds a new one per call.
_to_json = json.JSONEncoder(ensure_ascii=False).encode
_EMPTY = {name: "{}" if name == "custom" else "[]" for name in JSON_COLUMNS}


def staging_values(values: dict[str, Any]) -> tuple[Any, ...]:
    """The values of one checked row in FIELDS order, as COPY wants them."""
    out: list[Any] = []
    for name in FIELDS:
        value = values.get(name)
        if value is None:
            out.append(None)
        elif name in JSON_COLUMNS:
            out.append(_to_json(value) if value else _EMPTY[name])
        elif isinstance(value, Enum):
            out.append(value.value)
        elif name in DATE_COLUMNS and isinstance(value, str):
            out.append(date.fromisoformat(value))
        else:
            out.append(value)
    return tuple(out)


def _column_type(name: str) -> str:
    return str(Customer.__table__.c[name].type.compile(dialect=postgresql.dialect()))  # type: ignore[attr-defined,no-untyped-call]


async def prepare(conn: asyncpg.Connection) -> None:
    # One import at a time: two feeds racing on the same numbers would both see "new".
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('profile.customer_import'))")
    columns = ", ".join(f"{name} {_column_type(name)}" for name in FIELDS)
    await conn.execute(
        "DROP TABLE IF EXISTS import_row; "
        f"CREATE TEMP TABLE import_row (line integer NOT NULL, given bigint NOT NULL, "
        f"msisdn varchar(11) NOT NULL, {columns}) ON COMMIT DROP"
    )


async def stage(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(
        "import_row", columns=["line", "given", "msisdn", *FIELDS], records=rows
    )


def _given(name: str, alias: str = "s") -> str:
    return f"({alias}.given & {BITS[name]}) <> 0"


def _merged(name: str) -> str:
    if name == "sms_opt_out":
        # An import may record an opt-out, never clear one: only the customer can, through
        # an operator recording their request (PATCH) or a reply to a message.
        return (
            f"CASE WHEN {_given(name)} THEN s.{name} OR COALESCE(c.{name}, false) "
            f"WHEN c.id IS NULL THEN false ELSE c.{name} END"
        )
    if name == "sms_opt_out_at":
        # The opt-out keeps the time it was first given, unless the feed says when.
        return (
            f"CASE WHEN {_given(name)} THEN s.{name} "
            f"WHEN {_given('sms_opt_out')} THEN CASE WHEN s.sms_opt_out OR c.sms_opt_out "
            "THEN COALESCE(c.sms_opt_out_at, now()) END "
            "ELSE c.sms_opt_out_at END"
        )
    value = "COALESCE(c.custom, '{}'::jsonb) || s.custom" if name == "custom" else f"s.{name}"
    default = _NEW_DEFAULTS.get(name, "NULL")
    return (
        f"CASE WHEN {_given(name)} THEN {value} WHEN c.id IS NULL THEN {default} ELSE c.{name} END"
    )


_COMPOUND = "ARRAY[" + ",".join(f"'{s}'" for s in COMPOUND_SURNAMES) + "]"


def _snapshot(u: str) -> str:
    """The CustomerSnapshot of row alias ``u`` (manager alias ``mg`` gives the team and
    the manager's name), as ``service.snapshot_of`` builds it."""
    plain = [
        "msisdn", "version", "name", "gender", "birthday", "region", "city", "time_zone",
        "join_date", "status", "tier", "service_level", "lifecycle", "manager_id",
        "plan_name", "contract_end", "sms_opt_out", "do_not_disturb",
        "preferred_hours_start", "preferred_hours_end", "taboos", "important_dates",
        "custom", "contract_name", "churned_on", "churn_reason", "value_quadrant",
        "contact_channels", "sms_opt_out_at", "tags", "interests",
    ]  # fmt: skip
    honorific = (
        f"CASE WHEN {u}.gender = 'unknown' THEN {u}.name ELSE "
        f"CASE WHEN left({u}.name, 2) = ANY({_COMPOUND}) THEN left({u}.name, 2) "
        f"ELSE left({u}.name, 1) END || "
        f"CASE WHEN {u}.gender = 'female' THEN '女士' ELSE '先生' END END"
    )
    pairs = [f"'{name}', {u}.{name}" for name in plain] + [
        f"'customer_id', {u}.id",
        "'team_id', mg.team_id",
        "'manager_name', mg.name",
        f"'plan_fee', {u}.plan_fee::text",
        f"'balance', {u}.balance::text",
        f"'honorific', {honorific}",
    ]
    return f"jsonb_build_object({', '.join(pairs)})"


async def _subscribers(conn: asyncpg.Connection, types: list[str]) -> tuple[list[str], list[str]]:
    """(event type, subscriber) pairs, as two parallel arrays for ``unnest``."""
    hooks = await conn.fetch(
        f"SELECT id, event_types FROM {SCHEMA}.{events.webhook.name} WHERE active"
    )
    pairs = [(t, s) for t in types for s in service_subscribers(t)]
    for hook in hooks:
        subscribed = json.loads(hook["event_types"])
        pairs += [(t, f"webhook:{hook['id']}") for t in types if t in subscribed]
    return [t for t, _ in pairs], [s for _, s in pairs]


_DELIVER = (
    f"INSERT INTO {SCHEMA}.delivery (event_seq, subscriber, aggregate_id) "
    "SELECT ev.seq, s.subscriber, ev.aggregate_id FROM ev "
    "JOIN unnest($2::text[], $3::text[]) AS s(type, subscriber) ON s.type = ev.type"
)
_OUTBOX = (
    f"INSERT INTO {SCHEMA}.outbox (id, type, version, aggregate_id, occurred_at, payload, actor)"
)

EVENT_TYPES = [
    "customer.created",
    "customer.updated",
    "customer.tier_changed",
    "customer.manager_reassigned",
    "customer.churned",
]


async def hold_managers(conn: asyncpg.Connection) -> None:
    """Share-lock every manager until commit. The snapshots written next name managers; a
    manager renamed or leaving meanwhile (which rewrites their customers) waits for us, or
    we wait for it and read what it wrote."""
    await conn.execute(f"SELECT FROM {SCHEMA}.manager FOR SHARE")


async def apply(
    conn: asyncpg.Connection, *, actor: str
) -> tuple[dict[str, int], list[ImportIssue]]:
    """Upsert the staged rows; returns the counts and the rows refused at this stage."""
    work_mem = get_profile_settings().import_work_mem_mb
    await conn.execute(f"SET LOCAL work_mem = '{int(work_mem)}MB'")
    # Row counts and the join keys are what the plans need; statistics of every column (the
    # JSON ones most) cost half a second per 100,000 rows.
    await conn.execute("ANALYZE import_row (msisdn, manager_id)")
    await hold_managers(conn)
    issues: list[ImportIssue] = []
    superseded = await conn.fetchval(
        "WITH d AS (DELETE FROM import_row s USING (SELECT msisdn, max(line) AS keep "
        "FROM import_row GROUP BY msisdn HAVING count(*) > 1) k "
        "WHERE s.msisdn = k.msisdn AND s.line <> k.keep RETURNING 1) SELECT count(*) FROM d"
    )
    required_mask = sum(BITS[name] for name in REQUIRED_FOR_NEW)
    first_missing = " ".join(f"WHEN NOT {_given(name)} THEN '{name}'" for name in REQUIRED_FOR_NEW)
    missing = await conn.fetch(
        f"SELECT s.line, CASE {first_missing} END AS col FROM import_row s "
        f"WHERE (s.given & {required_mask}) <> {required_mask} "
        f"AND NOT EXISTS (SELECT 1 FROM {_T} c WHERE c.msisdn = s.msisdn)"
    )
    issues += [ImportIssue(line=r["line"], column=r["col"], reason="新客户必填") for r in missing]
    unknown_manager = await conn.fetch(
        "SELECT s.line, s.manager_id FROM import_row s WHERE s.manager_id IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.manager m "
        "WHERE m.id = s.manager_id AND m.active)"
    )
    issues += [
        ImportIssue(
            line=r["line"], column="manager_id", reason=f"没有在职的客户经理 {r['manager_id']}"
        )
        for r in unknown_manager
    ]
    if issues:
        await conn.execute(
            "DELETE FROM import_row WHERE line = ANY($1::int[])", [i.line for i in issues]
        )

    # Lock the customers this import rewrites before reading what it keeps of them: a PATCH
    # committed meanwhile is then read, not overwritten with the values it replaced.
    await conn.execute(
        f"SELECT FROM {_T} c WHERE c.msisdn IN (SELECT msisdn FROM import_row) "
        "ORDER BY c.id FOR UPDATE OF c"
    )
    merged = ", ".join(f"{_merged(name)} AS {name}" for name in FIELDS)
    await conn.execute(
        "DROP TABLE IF EXISTS import_merged; "
        "CREATE TEMP TABLE import_merged ON COMMIT DROP AS "
        "SELECT s.line, s.msisdn, c.id AS customer_id, c.tier AS old_tier, "
        f"c.manager_id AS old_manager_id, c.status AS old_status, {merged}, "
        "NULL::text[] AS changed "
        f"FROM import_row s LEFT JOIN {_T} c ON c.msisdn = s.msisdn"
    )
    differs = ", ".join(
        f"CASE WHEN m.{name} IS DISTINCT FROM c.{name} THEN '{name}' END" for name in FIELDS
    )
    await conn.execute(
        f"UPDATE import_merged m SET changed = array_remove(ARRAY[{differs}], NULL) "
        f"FROM {_T} c WHERE c.id = m.customer_id"
    )
    await conn.execute("ANALYZE import_merged (customer_id, manager_id)")
    counts = dict(
        await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE customer_id IS NULL) AS inserted, "
            "count(*) FILTER (WHERE cardinality(changed) > 0) AS updated, "
            "count(*) FILTER (WHERE cardinality(changed) = 0) AS unchanged FROM import_merged"
        )
        or {}
    )
    counts["superseded"] = superseded
    types, subscribers = await _subscribers(conn, EVENT_TYPES)
    columns = ", ".join(FIELDS)
    if counts["inserted"]:
        await conn.execute(
            f"WITH ins AS (INSERT INTO {_T} (msisdn, {columns}, version, created_at, updated_at) "
            f"SELECT msisdn, {columns}, 1, now(), now() FROM import_merged "
            "WHERE customer_id IS NULL ORDER BY line RETURNING *), "
            f"hist AS (INSERT INTO {SCHEMA}.manager_assignment "
            "(customer_id, manager_id, started_at, assigned_by, reason) "
            f"SELECT id, manager_id, now(), $1, '{IMPORT_REASON}' FROM ins "
            "WHERE manager_id IS NOT NULL), "
            f"ev AS ({_OUTBOX} SELECT gen_random_uuid(), 'customer.created', 1, ins.msisdn, "
            f"now(), jsonb_build_object('customer', {_snapshot('ins')}), $1 FROM ins "
            f"LEFT JOIN {SCHEMA}.manager mg ON mg.id = ins.manager_id "
            "RETURNING seq, type, aggregate_id) " + _DELIVER,
            actor,
            types,
            subscribers,
        )
    if counts["updated"]:
        # The moved customers first, as a set of their own: joined to the staged rows, a
        # fresh assignment table's stale statistics made the plan scan every staged row
        # once per assignment (seconds for 2,000 rows).
        await conn.execute(
            "WITH moved AS MATERIALIZED (SELECT customer_id FROM import_merged "
            "WHERE 'manager_id' = ANY(changed)) "
            f"UPDATE {SCHEMA}.manager_assignment a SET ended_at = now() FROM moved m "
            "WHERE a.customer_id = m.customer_id AND a.ended_at IS NULL"
        )
        await conn.execute(
            f"INSERT INTO {SCHEMA}.manager_assignment "
            "(customer_id, manager_id, started_at, assigned_by, reason) "
            f"SELECT customer_id, manager_id, now(), $1, '{IMPORT_REASON}' FROM import_merged "
            "WHERE 'manager_id' = ANY(changed) AND manager_id IS NOT NULL",
            actor,
        )
        assignments = ", ".join(f"{name} = m.{name}" for name in FIELDS)
        await conn.execute(
            f"WITH upd AS (UPDATE {_T} c SET {assignments}, version = c.version + 1, "
            "updated_at = now() FROM import_merged m "
            "WHERE c.id = m.customer_id AND cardinality(m.changed) > 0 "
            "RETURNING c.*, m.changed, m.old_tier, m.old_manager_id, m.old_status), "
            f"ev AS ({_OUTBOX} SELECT gen_random_uuid(), e.type, 1, u.msisdn, now(), "
            "e.payload, $1 FROM upd u "
            f"LEFT JOIN {SCHEMA}.manager mg ON mg.id = u.manager_id "
            # OFFSET 0 keeps the snapshot a subquery built once per row: pulled up, it
            # would be built again for each of the four payloads.
            f"CROSS JOIN LATERAL (SELECT {_snapshot('u')} AS snap OFFSET 0) sn "
            # A payload is built only for an event the row has (the others are NULL).
            "CROSS JOIN LATERAL (VALUES "
            "(1, 'customer.updated', jsonb_build_object('changed', to_jsonb(u.changed), "
            "'customer', sn.snap)), "
            "(2, 'customer.tier_changed', CASE WHEN u.old_tier IS DISTINCT FROM u.tier THEN "
            "jsonb_build_object('old_tier', u.old_tier, "
            f"'new_tier', u.tier, 'reason', '{IMPORT_REASON}', 'customer', sn.snap) END), "
            "(3, 'customer.manager_reassigned', CASE WHEN u.old_manager_id IS DISTINCT FROM "
            "u.manager_id THEN jsonb_build_object('old_manager_id', "
            "u.old_manager_id, 'new_manager_id', u.manager_id, 'customer', sn.snap) END), "
            "(4, 'customer.churned', CASE WHEN u.status = 'churned' AND u.old_status <> "
            "'churned' THEN jsonb_build_object('churned_on', u.churned_on, "
            "'reason', COALESCE(u.churn_reason, ''), 'customer', sn.snap) END)"
            ") AS e(n, type, payload) WHERE e.payload IS NOT NULL ORDER BY u.id, e.n "
            "RETURNING seq, type, aggregate_id) " + _DELIVER,
            actor,
            types,
            subscribers,
        )
    return {k: int(v) for k, v in counts.items()}, issues


async def upsert_billing(conn: asyncpg.Connection, rows: list[tuple[str, date, Any]]) -> int:
    """Upsert (msisdn, month, spend); returns how many numbers were not customers."""
    unknown = await conn.fetchval(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::date[], $3::numeric[]) "
        "AS r(msisdn, month, spend)), "
        f"ins AS (INSERT INTO {SCHEMA}.billing_month (customer_id, month, spend) "
        f"SELECT c.id, r.month, r.spend FROM r JOIN {_T} c ON c.msisdn = r.msisdn "
        "ON CONFLICT (customer_id, month) DO UPDATE SET spend = EXCLUDED.spend RETURNING 1) "
        f"SELECT count(*) FROM r WHERE NOT EXISTS (SELECT 1 FROM {_T} c WHERE c.msisdn = r.msisdn)",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )
    return int(unknown)


async def billing_exists(conn: asyncpg.Connection, month: date) -> bool:
    query = f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.billing_month WHERE month = $1)"
    return bool(await conn.fetchval(query, month))


TIER_LABELS = {"diamond": "钻卡", "gold": "金卡", "silver": "银卡", "none": "非会员"}


async def recompute_values(
    conn: asyncpg.Connection,
    *,
    as_of: date,
    window: list[date],
    thresholds: dict[str, Any],
) -> dict[str, int]:
    """RFM, tier and quadrant of every active customer from ``window`` (3 month starts,
    oldest first); changes recorded in tier_change, tier changes published."""
    first, mid, last = window
    t = thresholds
    await conn.execute("DROP TABLE IF EXISTS value_new")
    await conn.execute(
        "CREATE TEMP TABLE value_new ON COMMIT DROP AS "
        "WITH w AS (SELECT c.id, c.tier AS old_tier, c.value_quadrant AS old_quadrant, "
        "round(COALESCE(sum(b.spend), 0) / 3, 2) AS avg_spend, "
        "count(*) FILTER (WHERE b.spend > 0) AS active_months, "
        "max(b.month) FILTER (WHERE b.spend > 0) AS last_active, "
        "COALESCE(sum(b.spend) FILTER (WHERE b.month = $1), 0) AS first_spend, "
        "COALESCE(sum(b.spend) FILTER (WHERE b.month = $3), 0) AS last_spend "
        f"FROM {_T} c LEFT JOIN {SCHEMA}.billing_month b "
        "ON b.customer_id = c.id AND b.month BETWEEN $1 AND $3 "
        "WHERE c.status = 'active' GROUP BY c.id) "
        "SELECT w.*, "
        "CASE w.last_active WHEN $3 THEN 3 WHEN $2 THEN 2 WHEN $1 THEN 1 ELSE 0 END AS r, "
        "w.active_months::int AS f, "
        "1 + (SELECT count(*) FROM unnest($4::numeric[]) x WHERE w.avg_spend >= x)::int AS m, "
        "CASE WHEN w.active_months < $5 THEN 'none' WHEN w.avg_spend >= $6 THEN 'diamond' "
        "WHEN w.avg_spend >= $7 THEN 'gold' WHEN w.avg_spend >= $8 THEN 'silver' "
        "ELSE 'none' END AS new_tier, "
        "CASE WHEN w.avg_spend >= $9 THEN "
        "CASE WHEN w.last_spend > 0 AND w.last_spend >= w.first_spend * (1 + $10) "
        "THEN 'star' ELSE 'cash_cow' END "
        "ELSE CASE WHEN w.last_spend > 0 AND w.last_spend >= w.first_spend * (1 + $10) "
        "THEN 'question' ELSE 'dog' END END AS new_quadrant "
        "FROM w",
        first,
        mid,
        last,
        t["bounds"],
        t["min_active"],
        t["diamond"],
        t["gold"],
        t["silver"],
        t["quadrant_spend"],
        t["growth"],
    )
    labels = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in TIER_LABELS.items())
    counts = dict(
        await conn.fetchrow(
            "SELECT count(*) AS evaluated, "
            "count(*) FILTER (WHERE new_tier IS DISTINCT FROM old_tier) AS tier_changes, "
            "count(*) FILTER (WHERE new_quadrant IS DISTINCT FROM old_quadrant) "
            "AS quadrant_changes FROM value_new"
        )
        or {}
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.tier_change (customer_id, as_of, computed_at, old_tier, "
        "new_tier, old_quadrant, new_quadrant, avg_spend, rfm_recency, rfm_frequency, "
        "rfm_monetary, reason) "
        "SELECT id, $1, now(), old_tier, new_tier, old_quadrant, new_quadrant, avg_spend, "
        "r, f, m, format('近3个月（%s 至 %s）月均消费 %s 元，有消费 %s 个月：%s', "
        "to_char($2::date, 'YYYY-MM'), to_char($3::date, 'YYYY-MM'), avg_spend, f, "
        f"CASE WHEN f < $4 THEN format('有消费月数少于 %s 个月，不评会员等级', $4) "
        f"ELSE format('评为%s', CASE new_tier {labels} END) END) "
        "FROM value_new WHERE new_tier IS DISTINCT FROM old_tier "
        "OR new_quadrant IS DISTINCT FROM old_quadrant",
        as_of,
        first,
        last,
        t["min_active"],
    )
    types, subscribers = await _subscribers(conn, ["customer.tier_changed"])
    await hold_managers(conn)
    await conn.execute(
        f"WITH upd AS (UPDATE {_T} c SET rfm_recency = v.r, rfm_frequency = v.f, "
        "rfm_monetary = v.m, avg_spend_3m = v.avg_spend, value_quadrant = v.new_quadrant, "
        "value_computed_on = $4, tier = v.new_tier, "
        "version = c.version + (v.new_tier <> v.old_tier)::int, "
        "updated_at = CASE WHEN v.new_tier <> v.old_tier THEN now() ELSE c.updated_at END "
        "FROM value_new v WHERE c.id = v.id RETURNING c.*, v.old_tier), "
        f"ev AS ({_OUTBOX} SELECT gen_random_uuid(), 'customer.tier_changed', 1, u.msisdn, "
        "now(), jsonb_build_object('old_tier', u.old_tier, 'new_tier', u.tier, 'reason', "
        "tc.reason, 'customer', "
        f"{_snapshot('u')}), $1 FROM upd u "
        f"LEFT JOIN {SCHEMA}.manager mg ON mg.id = u.manager_id "
        f"JOIN {SCHEMA}.tier_change tc ON tc.customer_id = u.id AND tc.as_of = $4 "
        "AND tc.computed_at = now() "
        "WHERE u.old_tier <> u.tier ORDER BY u.id RETURNING seq, type, aggregate_id) " + _DELIVER,
        "tier-recompute",
        types,
        subscribers,
        as_of,
    )
    return {k: int(v) for k, v in counts.items()}


async def announce_all_created(conn: asyncpg.Connection, *, actor: str) -> None:
    """A ``customer.created`` event for every customer: for archives loaded without the
    import (demo data), so other services' read models fill through the usual events."""
    types, subscribers = await _subscribers(conn, ["customer.created"])
    await conn.execute(
        f"WITH ev AS ({_OUTBOX} SELECT gen_random_uuid(), 'customer.created', 1, u.msisdn, "
        f"now(), jsonb_build_object('customer', {_snapshot('u')}), $1 FROM {_T} u "
        f"LEFT JOIN {SCHEMA}.manager mg ON mg.id = u.manager_id ORDER BY u.id "
        "RETURNING seq, type, aggregate_id) " + _DELIVER,
        actor,
        types,
        subscribers,
    )
