"""Every query of the warning service.

Detection is one set-based pass over all subscribers for a day: the thresholds of the rule
set travel as one JSON parameter (a row per tier with an override, plus the default row),
usage is aggregated per subscriber over the longest window any rule needs, and each signal
is a SELECT over those aggregates. Warnings are upserted against the partial unique index
(one open warning per subscriber and signal) and only rows whose evidence changed are
touched, so a second run of the same day writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.warning.models import (
    SCHEMA,
    Contact,
    Customer,
    RuleSet,
    Signal,
    Status,
    Warning,
)
from services.warning.rules import DEFAULT_TIER, Band, Thresholds, threshold_columns

USAGE_COLUMNS = (
    "msisdn", "day", "outgoing_calls", "minutes", "data_mb", "spend", "balance",
    "competitor_hotline_calls", "forwarded_to_other_network", "other_network_call_share",
    "competitor_marketing_contacts",
)  # fmt: skip
USAGE_TYPES = (
    "text", "date", "int", "int", "int", "numeric", "numeric", "int", "int", "float8", "int",
)  # fmt: skip

CUSTOMER_COLUMNS = (
    "msisdn", "version", "name", "status", "tier", "manager_id", "team_id", "plan_name",
    "plan_fee", "contract_end", "customer_id",
)  # fmt: skip
CUSTOMER_TYPES = (
    "text", "int", "text", "text", "text", "text", "text", "text", "numeric", "date", "bigint",
)  # fmt: skip

OPEN = f"status <> '{Status.resolved.value}'"


# -- usage --------------------------------------------------------------------------------------


def _unnest(columns: Sequence[str], types: Sequence[str]) -> str:
    params = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(columns, types, strict=True))
    return f"SELECT * FROM unnest({params}) AS r({', '.join(columns)})"


USAGE_UPSERT = f"""
INSERT INTO {SCHEMA}.daily_usage ({", ".join(USAGE_COLUMNS)})
SELECT {", ".join(USAGE_COLUMNS)} FROM ({{source}}) AS src
ON CONFLICT (msisdn, day) DO UPDATE SET
  {", ".join(f"{c} = EXCLUDED.{c}" for c in USAGE_COLUMNS[2:])}
WHERE ({", ".join(f"daily_usage.{c}" for c in USAGE_COLUMNS[2:])})
  IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in USAGE_COLUMNS[2:])})
"""


async def upsert_usage(session: AsyncSession, rows: Sequence[Sequence[Any]]) -> int:
    """Insert or replace usage rows (one per subscriber and day) in one statement."""
    if not rows:
        return 0
    by_column = {c: [row[i] for row in rows] for i, c in enumerate(USAGE_COLUMNS)}
    sql = USAGE_UPSERT.format(source=_unnest(USAGE_COLUMNS, USAGE_TYPES))
    await session.execute(text(sql), by_column)
    return len(rows)


def usage_upsert_from(table: str) -> str:
    """The upsert from a staging table (the COPY path of ``keepwell import usage``)."""
    return USAGE_UPSERT.format(source=f"SELECT * FROM {table}")


# -- customers (read model) ---------------------------------------------------------------------


async def upsert_customers(session: AsyncSession, rows: Sequence[Sequence[Any]]) -> int:
    """Apply snapshots; one older than (or as old as) what we hold changes nothing, but for
    the customer id a copy kept before it had one (a rebuild fills it at the same version)."""
    if not rows:
        return 0
    by_column = {c: [row[i] for row in rows] for i, c in enumerate(CUSTOMER_COLUMNS)}
    sql = f"""
    INSERT INTO {SCHEMA}.customer ({", ".join(CUSTOMER_COLUMNS)}, updated_at)
    SELECT src.*, now() FROM ({_unnest(CUSTOMER_COLUMNS, CUSTOMER_TYPES)}) AS src
    ON CONFLICT (msisdn) DO UPDATE SET
      {", ".join(f"{c} = EXCLUDED.{c}" for c in CUSTOMER_COLUMNS[1:])}, updated_at = now()
    WHERE customer.version < EXCLUDED.version
      OR (customer.version = EXCLUDED.version AND customer.customer_id IS NULL
          AND EXCLUDED.customer_id IS NOT NULL)
    RETURNING msisdn
    """
    result = await session.execute(text(sql), by_column)
    return len(result.all())


async def get_customer(session: AsyncSession, msisdn: str) -> Customer | None:
    return await session.get(Customer, msisdn)


async def numbers_of(session: AsyncSession, customer_ids: Sequence[int]) -> list[str]:
    """The numbers of the customers the copy knows by these ids, in the order asked."""
    result = await session.execute(
        select(col(Customer.customer_id), col(Customer.msisdn)).where(
            col(Customer.customer_id).in_(customer_ids)
        )
    )
    found = {customer_id: msisdn for customer_id, msisdn in result.all()}
    return [found[i] for i in dict.fromkeys(customer_ids) if i in found]


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


async def sync_assignments(session: AsyncSession, msisdns: Sequence[str]) -> None:
    """Open warnings follow their customer to the manager and team in the read model."""
    await session.execute(
        text(f"""
        UPDATE {SCHEMA}.warning w SET manager_id = c.manager_id, team_id = c.team_id,
          updated_at = now()
        FROM {SCHEMA}.customer c
        WHERE c.msisdn = w.msisdn AND w.msisdn = ANY(CAST(:msisdns AS text[])) AND w.{OPEN}
          AND (w.manager_id, w.team_id) IS DISTINCT FROM (c.manager_id, c.team_id)
        """),
        {"msisdns": list(msisdns)},
    )


# -- rule sets ----------------------------------------------------------------------------------


async def current_rule_set(session: AsyncSession) -> RuleSet | None:
    result = await session.execute(select(RuleSet).order_by(col(RuleSet.version).desc()).limit(1))
    return result.scalar_one_or_none()


async def get_rule_set(session: AsyncSession, version: int) -> RuleSet | None:
    return await session.get(RuleSet, version)


async def insert_rule_set(
    session: AsyncSession,
    version: int,
    rules: list[dict[str, Any]],
    bands: list[dict[str, Any]],
    note: str,
    created_by: str,
) -> RuleSet | None:
    """Store a version; None when another writer took that version number first."""
    result = await session.execute(
        insert(RuleSet)
        .values(
            version=version,
            rules=rules,
            bands=bands,
            note=note,
            created_by=created_by,
            created_at=func.now(),
        )
        .on_conflict_do_nothing()
        .returning(col(RuleSet.version))
    )
    if result.first() is None:
        return None
    return await session.get(RuleSet, version)


async def lock_detection(session: AsyncSession) -> None:
    """One detection (or rule edit) at a time; released when the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('warning.detect'))"))


# -- detection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detected:
    raised: list[int]  # ids of new warnings
    updated: int  # open warnings whose evidence changed


def _detection_sql(thresholds: Thresholds) -> str:
    """The hits of every usage and contract signal for ``:day``, as (msisdn, signal, weight,
    cool, evidence)."""
    override = ", ".join(f"'{t}'" for t in thresholds.tiers) or "NULL"
    tier_of = f"CASE WHEN c.tier IN ({override}) THEN c.tier ELSE '{DEFAULT_TIER}' END"
    return f"""
WITH t AS (
  -- Window boundaries once per tier, so the per-row filters compare plain dates.
  SELECT x.*,
    :day - x.ud_recent_days AS ud_r, :day - x.ud_recent_days - x.ud_baseline_days AS ud_b,
    :day - x.zc_within_days AS zc_w, :day - x.ch_within_days AS ch_w,
    :day - x.cm_within_days AS cm_w, :day - x.cm_recent_days AS cm_r,
    :day - x.cm_recent_days - x.cm_baseline_days AS cm_b,
    :day - x.cf_within_days AS cf_w, :day - x.sb_period_days AS sb_w
  FROM jsonb_to_recordset(CAST(:thresholds AS jsonb)) AS x({threshold_columns()})
),
a AS (
  SELECT u.msisdn,
    count(*) FILTER (WHERE u.day > t.ud_r) AS ud_n_recent,
    count(*) FILTER (WHERE u.day <= t.ud_r AND u.day > t.ud_b) AS ud_n_base,
    avg(u.minutes) FILTER (WHERE u.day > t.ud_r) AS ud_min_r,
    avg(u.minutes) FILTER (WHERE u.day <= t.ud_r AND u.day > t.ud_b) AS ud_min_b,
    avg(u.outgoing_calls) FILTER (WHERE u.day > t.ud_r) AS ud_calls_r,
    avg(u.outgoing_calls) FILTER (WHERE u.day <= t.ud_r AND u.day > t.ud_b) AS ud_calls_b,
    avg(u.data_mb) FILTER (WHERE u.day > t.ud_r) AS ud_data_r,
    avg(u.data_mb) FILTER (WHERE u.day <= t.ud_r AND u.day > t.ud_b) AS ud_data_b,
    -- float8 sums: numeric arithmetic would dominate the whole pass.
    avg(CAST(u.spend AS float8)) FILTER (WHERE u.day > t.ud_r) AS ud_spend_r,
    avg(CAST(u.spend AS float8)) FILTER (WHERE u.day <= t.ud_r AND u.day > t.ud_b)
      AS ud_spend_b,
    sum(u.outgoing_calls) FILTER (WHERE u.day > t.zc_w) AS zc_calls_window,
    sum(u.outgoing_calls) FILTER (WHERE u.day <= t.zc_w) AS zc_calls_before,
    max(u.day) FILTER (WHERE u.outgoing_calls > 0) AS zc_last_call_day,
    sum(u.competitor_hotline_calls) FILTER (WHERE u.day > t.ch_w) AS ch_calls,
    sum(u.competitor_marketing_contacts) FILTER (WHERE u.day > t.cm_w) AS cm_contacts,
    avg(u.other_network_call_share) FILTER (WHERE u.day > t.cm_r AND u.outgoing_calls > 0)
      AS cm_share_r,
    avg(u.other_network_call_share) FILTER (WHERE u.day <= t.cm_r AND u.day > t.cm_b
                                              AND u.outgoing_calls > 0) AS cm_share_b,
    sum(u.forwarded_to_other_network) FILTER (WHERE u.day > t.cf_w) AS cf_calls,
    sum(u.spend) FILTER (WHERE u.day > t.sb_w) AS sb_spend,
    count(*) FILTER (WHERE u.day > t.sb_w) AS sb_days,
    max(u.balance) FILTER (WHERE u.day = :day) AS lb_balance
  FROM {SCHEMA}.daily_usage u
  LEFT JOIN {SCHEMA}.customer c ON c.msisdn = u.msisdn
  JOIN t ON t.tier = {tier_of}
  WHERE u.day BETWEEN :start AND :day AND c.status IS DISTINCT FROM 'churned'
  GROUP BY u.msisdn
),
s AS (
  SELECT a.*, c.plan_fee, t.*,
    CASE WHEN a.ud_n_recent >= t.ud_min_recent_days AND a.ud_n_base >= t.ud_min_baseline_days
      THEN jsonb_build_object(
        'minutes', CASE WHEN a.ud_min_b >= t.ud_min_baseline_minutes
          THEN round(100 * (1 - a.ud_min_r / NULLIF(a.ud_min_b, 0))) END,
        'calls', CASE WHEN a.ud_calls_b >= t.ud_min_baseline_calls
          THEN round(100 * (1 - a.ud_calls_r / NULLIF(a.ud_calls_b, 0))) END,
        'data_mb', CASE WHEN a.ud_data_b >= t.ud_min_baseline_data_mb
          THEN round(100 * (1 - a.ud_data_r / NULLIF(a.ud_data_b, 0))) END,
        'spend', CASE WHEN a.ud_spend_b >= t.ud_min_baseline_spend
          THEN round(100 * (1 - a.ud_spend_r / NULLIF(a.ud_spend_b, 0))) END)
    END AS ud_drops
  FROM a
  LEFT JOIN {SCHEMA}.customer c ON c.msisdn = a.msisdn
  JOIN t ON t.tier = {tier_of}
),
zero_days AS (
  SELECT u.msisdn, u.day,
    u.day - CAST(row_number() OVER (PARTITION BY u.msisdn ORDER BY u.day) AS int) AS island
  FROM {SCHEMA}.daily_usage u
  WHERE u.day BETWEEN :zero_start AND :day AND u.outgoing_calls = 0
),
zero_runs AS (
  SELECT DISTINCT ON (z.msisdn) z.msisdn, z.first_day, z.last_day,
    z.last_day - z.first_day + 1 AS days
  FROM (
    SELECT zd.msisdn, greatest(min(zd.day), :day - s.zc_within_days + 1) AS first_day,
      max(zd.day) AS last_day, s.zc_days, s.zc_last_call_day
    FROM zero_days zd JOIN s ON s.msisdn = zd.msisdn
    GROUP BY zd.msisdn, zd.island, s.zc_within_days, s.zc_days, s.zc_last_call_day
  ) z
  WHERE z.last_day - z.first_day + 1 >= z.zc_days
    -- Still silent: no call since the run (the detection day's own usage counts), so
    -- a customer whose calls resumed is not warned about an earlier silence.
    AND (z.zc_last_call_day IS NULL OR z.zc_last_call_day < z.first_day)
  ORDER BY z.msisdn, z.last_day - z.first_day DESC, z.last_day DESC
),
drops AS (
  SELECT s.msisdn, d.key AS metric, CAST(d.value AS int) AS pct, s.ud_drops
  FROM s, jsonb_each(s.ud_drops) d
  WHERE s.ud_on AND jsonb_typeof(d.value) = 'number' AND CAST(d.value AS int) >= s.ud_drop_pct
),
hits AS (
  SELECT c.msisdn, 'contract_expiry' AS signal, t.ce_weight AS weight, t.ce_cool AS cool,
    jsonb_build_object('contract_end', c.contract_end, 'days_left', c.contract_end - :day,
                       'plan_name', c.plan_name, 'days_before', t.ce_days_before) AS evidence
  FROM {SCHEMA}.customer c JOIN t ON t.tier = {tier_of}
  WHERE t.ce_on AND c.status <> 'churned'
    AND c.contract_end BETWEEN :day AND :day + t.ce_days_before
  UNION ALL
  SELECT * FROM (
  SELECT DISTINCT ON (d.msisdn) d.msisdn, 'usage_drop', s.ud_weight, s.ud_cool,
    jsonb_build_object('metric', d.metric, 'drop_pct', d.pct, 'drops', d.ud_drops,
      'recent_days', s.ud_recent_days, 'baseline_days', s.ud_baseline_days,
      'recent_avg', round(CAST(CASE d.metric WHEN 'minutes' THEN s.ud_min_r
        WHEN 'calls' THEN s.ud_calls_r WHEN 'data_mb' THEN s.ud_data_r ELSE s.ud_spend_r END
        AS numeric), 1),
      'baseline_avg', round(CAST(CASE d.metric WHEN 'minutes' THEN s.ud_min_b
        WHEN 'calls' THEN s.ud_calls_b WHEN 'data_mb' THEN s.ud_data_b ELSE s.ud_spend_b END
        AS numeric), 1))
  FROM drops d JOIN s ON s.msisdn = d.msisdn
  ORDER BY d.msisdn, d.pct DESC, d.metric) worst
  UNION ALL
  SELECT s.msisdn, 'zero_calls', s.zc_weight, s.zc_cool,
    jsonb_build_object('days', z.days, 'first_day', z.first_day, 'last_day', z.last_day,
                       'min_days', s.zc_days)
  FROM zero_runs z JOIN s ON s.msisdn = z.msisdn
  -- A line that never calls (data-only SIM) is not going quiet.
  WHERE s.zc_on AND coalesce(s.zc_calls_window, 0) + coalesce(s.zc_calls_before, 0) > 0
  UNION ALL
  SELECT s.msisdn, 'competitor_hotline', s.ch_weight, s.ch_cool,
    jsonb_build_object('calls', s.ch_calls, 'within_days', s.ch_within_days,
                       'min_calls', s.ch_min_calls)
  FROM s WHERE s.ch_on AND s.ch_calls >= s.ch_min_calls
  UNION ALL
  SELECT s.msisdn, 'competitor_marketing', s.cm_weight, s.cm_cool,
    jsonb_build_object('contacts', coalesce(s.cm_contacts, 0), 'within_days', s.cm_within_days,
      'min_contacts', s.cm_min_contacts,
      'share_pct', round(100 * s.cm_share_r), 'baseline_share_pct', round(100 * s.cm_share_b),
      'share_threshold_pct', s.cm_share_pct, 'recent_days', s.cm_recent_days,
      'baseline_days', s.cm_baseline_days,
      'by_contacts', coalesce(s.cm_contacts >= s.cm_min_contacts, false),
      'by_share', coalesce(100 * s.cm_share_r >= s.cm_share_pct
                  AND 100 * (s.cm_share_r - s.cm_share_b) >= s.cm_share_rise_pct, false))
  FROM s WHERE s.cm_on AND (s.cm_contacts >= s.cm_min_contacts
    OR (100 * s.cm_share_r >= s.cm_share_pct
        AND 100 * (s.cm_share_r - s.cm_share_b) >= s.cm_share_rise_pct))
  UNION ALL
  SELECT s.msisdn, 'call_forwarding', s.cf_weight, s.cf_cool,
    jsonb_build_object('calls', s.cf_calls, 'within_days', s.cf_within_days,
                       'min_calls', s.cf_min_calls)
  FROM s WHERE s.cf_on AND s.cf_calls >= s.cf_min_calls
  UNION ALL
  SELECT s.msisdn, 'spend_below_plan', s.sb_weight, s.sb_cool,
    jsonb_build_object('spend', s.sb_spend, 'period_days', s.sb_period_days,
      'plan_fee', s.plan_fee, 'pct', round(100 * s.sb_spend / NULLIF(s.plan_fee, 0)),
      'below_pct', s.sb_below_pct)
  FROM s WHERE s.sb_on AND s.plan_fee > 0 AND s.sb_days >= s.sb_min_days
    AND 100 * s.sb_spend < s.sb_below_pct * s.plan_fee
  UNION ALL
  SELECT s.msisdn, 'low_balance', s.lb_weight, s.lb_cool,
    jsonb_build_object('balance', s.lb_balance, 'max_balance', s.lb_max_balance)
  FROM s WHERE s.lb_on AND s.lb_balance < s.lb_max_balance
)
"""


UPSERT_HITS = f"""
, candidates AS (
  SELECT h.*, c.manager_id, c.team_id FROM hits h
  LEFT JOIN {SCHEMA}.customer c ON c.msisdn = h.msisdn
  WHERE NOT EXISTS (
    SELECT 1 FROM {SCHEMA}.warning r
    WHERE r.msisdn = h.msisdn AND r.signal = h.signal AND r.status = 'resolved'
      AND r.outcome IN ('retained', 'false_alarm')
      AND CAST(r.resolved_at AT TIME ZONE :time_zone AS date) > :day - h.cool)
)
INSERT INTO {SCHEMA}.warning AS w (msisdn, signal, status, severity, risk_score, weight,
  rule_version, evidence, first_detected_on, last_detected_on, due_on, manager_id, team_id,
  raised_at, updated_at, resolution_note)
SELECT msisdn, signal, 'open', 'low', 0, weight, :version, evidence, :day, :day,
  :day + :max_due_days, manager_id, team_id, now(), now(), ''
FROM candidates
ON CONFLICT (msisdn, signal) WHERE {OPEN} DO UPDATE SET
  evidence = EXCLUDED.evidence, weight = EXCLUDED.weight, rule_version = EXCLUDED.rule_version,
  last_detected_on = EXCLUDED.last_detected_on, updated_at = now()
WHERE w.last_detected_on <= EXCLUDED.last_detected_on
  AND (w.evidence, w.weight, w.rule_version, w.last_detected_on)
      IS DISTINCT FROM (EXCLUDED.evidence, EXCLUDED.weight, EXCLUDED.rule_version,
                        EXCLUDED.last_detected_on)
RETURNING w.id, w.xmax = 0 AS inserted
"""


def _typed(sql: str) -> str:
    # asyncpg cannot infer the type of a bare parameter in "$1 + $2".
    for name, sql_type in (("day", "date"), ("as_of", "date"), ("max_due_days", "int")):
        sql = sql.replace(f":{name}", f"CAST(:{name} AS {sql_type})")
    return sql


def detection_window(thresholds: Thresholds, day: date) -> dict[str, date]:
    longest = max(
        thresholds.max_param(Signal.usage_drop, "recent_days", "baseline_days"),
        thresholds.max_param(Signal.competitor_marketing, "recent_days", "baseline_days"),
        thresholds.max_param(Signal.competitor_marketing, "within_days"),
        thresholds.max_param(Signal.competitor_hotline, "within_days"),
        thresholds.max_param(Signal.call_forwarding, "within_days"),
        thresholds.max_param(Signal.spend_below_plan, "period_days"),
        thresholds.max_param(Signal.zero_calls, "within_days"),
    )
    zero = thresholds.max_param(Signal.zero_calls, "within_days")
    return {
        "start": day - timedelta(days=longest - 1),
        "zero_start": day - timedelta(days=zero - 1),
    }


async def detect(
    session: AsyncSession,
    *,
    day: date,
    thresholds: Thresholds,
    version: int,
    max_due_days: int,
    time_zone: str,
    work_mem_mb: int,
) -> Detected:
    params = {
        "thresholds": json.dumps(thresholds.rows()),
        "day": day,
        "version": version,
        "max_due_days": max_due_days,
        "time_zone": time_zone,
        **detection_window(thresholds, day),
    }
    # One aggregate row per subscriber: with the default work_mem the hash spills to disk.
    await session.execute(text(f"SET LOCAL work_mem = '{int(work_mem_mb)}MB'"))
    sql = _typed(_detection_sql(thresholds) + UPSERT_HITS)
    rows = (await session.execute(text(sql), params)).all()
    raised = [r.id for r in rows if r.inserted]
    return Detected(raised=raised, updated=len(rows) - len(raised))


def _bands_sql() -> str:
    return """
    CROSS JOIN LATERAL (
      SELECT x.severity, x.due_days
      FROM jsonb_to_recordset(CAST(:bands AS jsonb)) AS x(severity text, min_score int,
                                                          due_days int)
      WHERE x.min_score <= r.score ORDER BY x.min_score DESC LIMIT 1) b
    """


async def rescore(
    session: AsyncSession, *, bands: list[Band], as_of: date, msisdns: list[str] | None = None
) -> int:
    """Recompute the risk score, severity and due date of open warnings (all, or of the
    given subscribers). A due date only ever moves earlier."""
    only = "AND msisdn = ANY(CAST(:msisdns AS text[]))" if msisdns is not None else ""
    sql = f"""
    WITH r AS (
      SELECT msisdn, least(100, sum(weight)) AS score FROM {SCHEMA}.warning
      WHERE {OPEN} {only} GROUP BY msisdn
    ), scored AS (
      SELECT r.msisdn, r.score, b.severity, b.due_days FROM r {_bands_sql()}
    )
    UPDATE {SCHEMA}.warning w SET risk_score = scored.score, severity = scored.severity,
      due_on = least(w.due_on, :as_of + scored.due_days), updated_at = now()
    FROM scored
    WHERE w.msisdn = scored.msisdn AND w.{OPEN}
      AND (w.risk_score <> scored.score OR w.severity <> scored.severity
           OR w.due_on > :as_of + scored.due_days)
    """
    params: dict[str, Any] = {
        "bands": json.dumps([b.model_dump(mode="json") for b in bands]),
        "as_of": as_of,
    }
    if msisdns is not None:
        params["msisdns"] = msisdns
    result = await session.execute(text(_typed(sql)), params)
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- warnings -----------------------------------------------------------------------------------


async def get_warning(
    session: AsyncSession, warning_id: int, *, lock: bool = False
) -> Warning | None:
    query = select(Warning).where(col(Warning.id) == warning_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def warnings_by_id(session: AsyncSession, ids: Sequence[int]) -> list[Warning]:
    if not ids:
        return []
    # One array parameter: an IN list of a night's new warnings would exceed the
    # protocol's 32767 bind parameters.
    ids_param = bindparam("ids", list(ids), type_=ARRAY(BigInteger))
    result = await session.execute(
        select(Warning).where(col(Warning.id) == any_(ids_param)).order_by(col(Warning.id))
    )
    return list(result.scalars())


async def open_warning(session: AsyncSession, msisdn: str, signal: Signal) -> Warning | None:
    result = await session.execute(
        select(Warning)
        .where(
            col(Warning.msisdn) == msisdn,
            col(Warning.signal) == signal,
            col(Warning.status) != Status.resolved,
        )
        .with_for_update()
    )
    return result.scalar_one_or_none()


async def insert_warning(session: AsyncSession, warning: Warning) -> Warning:
    """Insert unless an open warning of that subscriber and signal appeared meanwhile;
    returns whichever is now open."""
    values = warning.model_dump(exclude={"id"})
    result = await session.execute(
        insert(Warning)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["msisdn", "signal"], index_where=text(OPEN))
        .returning(Warning)
    )
    found = result.scalar_one_or_none()
    if found is None:
        found = await open_warning(session, warning.msisdn, warning.signal)
    assert found is not None
    return found


@dataclass(frozen=True)
class Scope:
    """Whose warnings a principal sees: everyone's, one manager's or one team's."""

    manager_id: str | None = None
    team_id: str | None = None


def _scoped(query: Any, scope: Scope) -> Any:
    if scope.manager_id is not None:
        query = query.where(col(Warning.manager_id) == scope.manager_id)
    if scope.team_id is not None:
        query = query.where(col(Warning.team_id) == scope.team_id)
    return query


async def list_warnings(
    session: AsyncSession,
    scope: Scope,
    *,
    statuses: Sequence[Status],
    signal: Signal | None,
    msisdns: Sequence[str] | None,
    manager_id: str | None,
    limit: int,
    offset: int,
    customer_ids: Sequence[int] | None = None,
) -> list[Warning]:
    if set(statuses) == {Status.open, Status.in_progress}:
        # Literally the predicate of the partial indexes: a parameter would not prove it.
        query = select(Warning).where(text(OPEN))
    else:
        query = select(Warning).where(col(Warning.status).in_(statuses))
    if signal is not None:
        query = query.where(col(Warning.signal) == signal)
    if msisdns is not None:
        query = query.where(col(Warning.msisdn).in_(msisdns))
    if customer_ids is not None:
        numbers = select(col(Customer.msisdn)).where(col(Customer.customer_id).in_(customer_ids))
        query = query.where(col(Warning.msisdn).in_(numbers))
    if manager_id is not None:
        query = query.where(col(Warning.manager_id) == manager_id)
    query = _scoped(query, scope).order_by(
        col(Warning.risk_score).desc(),
        col(Warning.due_on),
        col(Warning.id),
    )
    result = await session.execute(query.limit(limit).offset(offset))
    return list(result.scalars())


async def open_warnings_of(
    session: AsyncSession, msisdn: str, *, lock: bool = False
) -> list[Warning]:
    statement = (
        select(Warning)
        .where(col(Warning.msisdn) == msisdn, col(Warning.status) != Status.resolved)
        .order_by(col(Warning.weight).desc(), col(Warning.id))
    )
    if lock:
        statement = statement.with_for_update()
    result = await session.execute(statement)
    return list(result.scalars())


async def open_warnings_of_many(session: AsyncSession, msisdns: Sequence[str]) -> list[Warning]:
    """The open warnings of several subscribers in one query, each one's in the order
    :func:`open_warnings_of` gives."""
    statement = (
        select(Warning)
        .where(col(Warning.msisdn).in_(msisdns), col(Warning.status) != Status.resolved)
        .order_by(col(Warning.msisdn), col(Warning.weight).desc(), col(Warning.id))
    )
    return list((await session.execute(statement)).scalars())


async def customers_among(session: AsyncSession, msisdns: Sequence[str]) -> dict[str, Customer]:
    """Those of these numbers that are in the customer copy, by number."""
    statement = select(Customer).where(col(Customer.msisdn).in_(msisdns))
    return {c.msisdn: c for c in (await session.execute(statement)).scalars()}


async def add_contact(session: AsyncSession, contact: Contact) -> Contact:
    session.add(contact)
    await session.flush()
    return contact


async def contacts_of(session: AsyncSession, warning_id: int) -> list[Contact]:
    result = await session.execute(
        select(Contact)
        .where(col(Contact.warning_id) == warning_id)
        .order_by(col(Contact.at), col(Contact.id))
    )
    return list(result.scalars())


# -- reports ------------------------------------------------------------------------------------


async def open_counts(session: AsyncSession, scope: Scope, column: str) -> list[tuple[Any, int]]:
    key = getattr(Warning, column)
    query = select(key, func.count()).where(col(Warning.status) != Status.resolved)
    query = _scoped(query, scope).group_by(key).order_by(func.count().desc(), key)
    return [(r[0], r[1]) for r in await session.execute(query)]


async def outcome_counts(
    session: AsyncSession, scope: Scope, group: str, start: datetime, end: datetime
) -> list[tuple[Any, str, int]]:
    """(group value, outcome, count) of warnings resolved in [start, end)."""
    key = getattr(Warning, group)
    query = select(key, col(Warning.outcome), func.count()).where(
        col(Warning.status) == Status.resolved,
        col(Warning.resolved_at) >= start,
        col(Warning.resolved_at) < end,
    )
    query = _scoped(query, scope).group_by(key, col(Warning.outcome))
    return [(r[0], r[1], r[2]) for r in await session.execute(query)]


# What warning holds about one customer (the access right; `keepwell export` joins every
# service's part into one document).
EXPORT_QUERIES = {
    "customer": "SELECT * FROM warning.customer WHERE msisdn = :m",
    "warnings": "SELECT * FROM warning.warning WHERE msisdn = :m ORDER BY id",
    "follow_ups": "SELECT * FROM warning.contact WHERE msisdn = :m ORDER BY id",
    "daily_usage": "SELECT * FROM warning.daily_usage WHERE msisdn = :m ORDER BY day",
}
