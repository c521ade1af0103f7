"""EXPLAIN (ANALYZE) of the list queries and of the event tables' pruning, before and after
the indexes of 2026-12-02.

Not a test: loads ~1M rows per table into a scratch database (an embedded PostgreSQL under
a temporary directory, or the server of $DATABASE_URL) and prints, per query, the plan and
time without the new index ("before": dropped inside a transaction that is rolled back) and
with it ("after", also rolled back: the pruning statements delete). Findings are written up
in docs/indexes.md.

    .venv/bin/python scripts/explain_indexes.py [--rows 1000000] [--only lists|events]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import uuid
from pathlib import Path

import asyncpg

import migrations
from services.kit.config import SERVICES
from services.kit.embedded import EmbeddedPostgres, ensure_database

NUMBERS = "ARRAY(SELECT (13800000000 + g * 7919 % {rows})::text FROM generate_series(1, 50) g)"

LOAD = """
INSERT INTO profile.team (id, name, region, supervisor_name, created_at)
SELECT 'T' || t, 'team ' || t, '广东', 'sup', now() FROM generate_series(1, 100) t;
INSERT INTO profile.manager (id, name, phone, team_id, active, created_at)
SELECT 'M' || m, 'mgr ' || m, (13900000000 + m)::text, 'T' || (m % 100 + 1), true, now()
FROM generate_series(1, 2000) m;
INSERT INTO profile.customer (msisdn, name, gender, region, city, time_zone, join_date,
  plan_name, plan_fee, balance, status, tier, service_level, lifecycle, manager_id,
  interests, tags, preferences, taboos, important_dates, custom, sms_opt_out,
  do_not_disturb, preferred_hours_start, preferred_hours_end, contact_channels, version,
  created_at, updated_at)
SELECT (13800000000 + i)::text,
  (ARRAY['王','李','张','刘','陈','杨','黄','赵','周','吴'])[i % 10 + 1]
    || (ARRAY['建国','芳','伟','娜','磊','静','强','敏','洋','丽','军','霞'])[i % 12 + 1]
    || (ARRAY['','华','明','红'])[i % 4 + 1],
  'male', '广东', '广州', 'Asia/Shanghai', date '2015-01-01', '5G', 150, 10, 'active',
  'gold', 'A', 'maturity', 'M' || (i % 2000 + 1), '[]',
  CASE WHEN i % 100000 = 0 THEN '["私人银行"]'::jsonb
       WHEN i % 1000 = 0 THEN '["商旅客户","高端家庭"]'::jsonb
       WHEN i % 7 = 0 THEN '["高端家庭"]'::jsonb ELSE '[]'::jsonb END,
  '[]', '[]', '[]', '{{}}', false, false, 9, 21, '[]', 1, now(), now()
FROM generate_series(1, {rows}) i;
INSERT INTO warning.warning (msisdn, signal, status, severity, risk_score, weight,
  rule_version, evidence, first_detected_on, last_detected_on, due_on, manager_id, team_id,
  raised_at, updated_at, resolution_note)
SELECT (13800000000 + i % {rows})::text,
  (ARRAY['contract_expiry','usage_drop','zero_calls','low_balance'])[i % 4 + 1],
  CASE WHEN i / 3 % 10 < 8 THEN 'resolved' WHEN i / 3 % 10 = 8 THEN 'open'
    ELSE 'in_progress' END,
  'medium', i * 37 % 101, 20, 1, '{{}}', date '2026-11-01', date '2026-11-01',
  date '2026-11-01' + (i % 30), 'M' || (i % 2000 + 1), 'T' || (i % 100 + 1), now(), now(), ''
FROM generate_series(1, {rows}) i;
INSERT INTO warning.customer (msisdn, version, name, manager_id, team_id, tier, status,
  plan_name, plan_fee, updated_at)
SELECT (13800000000 + i)::text, 1, 'x', 'M' || (i % 2000 + 1), 'T' || (i % 100 + 1), 'gold',
  'active', '5G', 150, now()
FROM generate_series(1, {rows}) i;
INSERT INTO care.campaign (id, name, kind, category, template, taboo_tags, audience,
  local_time, urgent, control_percent, status, created_by, created_at, updated_at)
SELECT ('00000000-0000-0000-0000-' || lpad(c::text, 12, '0'))::uuid, 'campaign ' || c,
  'manual', 'care', 'hi', '[]', '{{}}', false, false, 0, 'completed', 'op', now(), now()
FROM generate_series(1, 100) c;
INSERT INTO care.recipient (campaign_id, msisdn, idempotency_key, state, due_at, attempts,
  provider, provider_message_id, counts_toward_cap, sent_at, updated_at)
SELECT ('00000000-0000-0000-0000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid,
  (13800000000 + i * 13 % {rows})::text, 'k' || i, 'delivered', now(), 1,
  CASE WHEN i % 2 = 0 THEN 'aliyun' ELSE 'sandbox' END, 'pm' || i, true,
  now() - (i % 1000) * interval '1 minute', now()
FROM generate_series(1, {rows}) i;
ANALYZE;
"""

# 14 days of profile events (a nightly feed's worth each day), oldest first, each with three
# deliveries, all delivered but one in a thousand (pending or dead), one delivery in ten
# with a failed attempt first; warning's inbox of as many events over the same days.
LOAD_EVENTS = """
INSERT INTO profile.outbox (id, type, version, aggregate_id, occurred_at, payload)
SELECT gen_random_uuid(), 'customer.updated', 1, (13800000000 + i)::text,
  now() - interval '14 days' * ({rows} - i) / {rows}, '{{"changed": ["tier"]}}'
FROM generate_series(1, {rows}) i;
INSERT INTO profile.delivery (event_seq, subscriber, aggregate_id, status, attempts,
  next_attempt_at, delivered_at)
SELECT o.seq, s.name, o.aggregate_id,
  CASE WHEN o.seq % 1000 = 0 AND s.name = 'service:care' THEN 'dead'
       WHEN o.seq % 1000 = 500 AND s.name = 'service:care' THEN 'pending' ELSE 'delivered' END,
  1, o.occurred_at, o.occurred_at + interval '1 second'
FROM profile.outbox o
CROSS JOIN (VALUES ('service:warning'), ('service:care'), ('service:complaint')) AS s(name);
INSERT INTO profile.delivery_attempt (delivery_id, at, status_code, error, milliseconds)
SELECT d.id, d.delivered_at - interval '1 second', 503, 'HTTP 503', 30
FROM profile.delivery d WHERE d.id % 10 = 0;
INSERT INTO warning.inbox (event_id, producer, type, processed_at)
SELECT gen_random_uuid(), 'profile', 'customer.updated',
  now() - interval '14 days' * ({rows} - i) / {rows}
FROM generate_series(1, {rows}) i;
ANALYZE;
"""

BEFORE = [
    "DROP INDEX profile.ix_customer_tags",
    "DROP INDEX profile.ix_customer_name_trgm",
    "DROP INDEX warning.ix_warning_manager_open",
    "DROP INDEX warning.ix_warning_team_open",
    "DROP INDEX warning.ix_warning_open_risk",
    "CREATE INDEX ix_warning_manager_open ON warning.warning (manager_id, risk_score)",
    "DROP INDEX care.ix_recipient_provider_message",
]
"""The schema as the previous migrations left it."""

BEFORE_EVENTS = [
    "DROP INDEX profile.ix_profile_outbox_occurred_at",
    "DROP INDEX warning.ix_warning_inbox_processed_at",
]
"""The event tables as the migrations before pruning left them."""

_CUTOFF = "now() - interval '7 days'"
_CANDIDATES = f"""SELECT o.seq FROM profile.outbox o
  WHERE o.occurred_at < {_CUTOFF}
    AND NOT EXISTS (SELECT 1 FROM profile.delivery d WHERE d.event_seq = o.seq
      AND (d.status <> 'delivered' OR d.delivered_at IS NULL OR d.delivered_at >= {_CUTOFF}))
  ORDER BY o.occurred_at LIMIT 1000 FOR UPDATE OF o SKIP LOCKED"""

# (name, the statements that undo the new indexes (none: not concerned), the query)
EVENT_CASES: list[tuple[str, list[str], str]] = [
    ("prune: the next 1000 events to prune", BEFORE_EVENTS, _CANDIDATES),
    (
        "prune: the next 1000 events, when none is old enough (a run's last look)",
        BEFORE_EVENTS,
        _CANDIDATES.replace("interval '7 days'", "interval '15 days'"),
    ),
    (
        "prune: delete 1000 events with their deliveries and attempts",
        [],
        f"""WITH doomed AS ({_CANDIDATES.replace(" FOR UPDATE OF o SKIP LOCKED", "")}),
          attempts AS (DELETE FROM profile.delivery_attempt a USING profile.delivery d, doomed
            WHERE d.event_seq = doomed.seq AND a.delivery_id = d.id RETURNING a.id),
          deliveries AS (DELETE FROM profile.delivery d USING doomed
            WHERE d.event_seq = doomed.seq RETURNING d.id),
          events AS (DELETE FROM profile.outbox o USING doomed WHERE o.seq = doomed.seq
            RETURNING o.seq)
          SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries),
            (SELECT count(*) FROM attempts)""",
    ),
    (
        "prune: delete the next 1000 inbox rows",
        BEFORE_EVENTS,
        f"""DELETE FROM warning.inbox WHERE event_id IN (SELECT event_id FROM warning.inbox
          WHERE processed_at < {_CUTOFF} ORDER BY processed_at LIMIT 1000
          FOR UPDATE SKIP LOCKED)""",
    ),
]

# (name, whether the new indexes concern it, the query)
CASES: list[tuple[str, list[str], str]] = [
    (
        "profile ?tag=",
        ["DROP INDEX profile.ix_customer_tags"],
        """SELECT * FROM profile.customer WHERE tags @> '["商旅客户"]'
           ORDER BY id LIMIT 50""",
    ),
    (
        "profile ?tag= (a rare tag, 1 in 100 000)",
        ["DROP INDEX profile.ix_customer_tags"],
        """SELECT * FROM profile.customer WHERE tags @> '["私人银行"]'
           ORDER BY id LIMIT 50""",
    ),
    (
        "profile ?q= (3 characters)",
        ["DROP INDEX profile.ix_customer_name_trgm"],
        "SELECT * FROM profile.customer WHERE name ILIKE '%建国华%' ORDER BY id LIMIT 50",
    ),
    (
        "profile ?q= (1 character)",
        ["DROP INDEX profile.ix_customer_name_trgm"],
        "SELECT * FROM profile.customer WHERE name ILIKE '%芳%' ORDER BY id LIMIT 50",
    ),
    (
        "profile ?msisdn= x50",
        [],
        f"SELECT * FROM profile.customer WHERE msisdn = ANY({NUMBERS}) ORDER BY id LIMIT 50",
    ),
    (
        "warning open list of a manager",
        [
            "DROP INDEX warning.ix_warning_manager_open",
            "CREATE INDEX ix_warning_manager_open ON warning.warning (manager_id, risk_score)",
        ],
        """SELECT * FROM warning.warning WHERE status <> 'resolved' AND manager_id = 'M17'
           ORDER BY risk_score DESC, due_on, id LIMIT 50""",
    ),
    (
        "warning open list of a team",
        ["DROP INDEX warning.ix_warning_team_open"],
        """SELECT * FROM warning.warning WHERE status <> 'resolved' AND team_id = 'T17'
           ORDER BY risk_score DESC, due_on, id LIMIT 50""",
    ),
    (
        "warning open list, everyone (operator)",
        ["DROP INDEX warning.ix_warning_open_risk"],
        """SELECT * FROM warning.warning WHERE status <> 'resolved'
           ORDER BY risk_score DESC, due_on, id LIMIT 50""",
    ),
    (
        "warning ?msisdn= x50 (open) and /risk",
        [],
        f"""SELECT * FROM warning.warning WHERE msisdn = ANY({NUMBERS})
           AND status <> 'resolved' ORDER BY msisdn, weight DESC, id""",
    ),
    (
        "care receipt by provider message id",
        ["DROP INDEX care.ix_recipient_provider_message"],
        """SELECT id FROM care.recipient WHERE provider_message_id = 'pm123457'
           AND state IN ('sending', 'sent')""",
    ),
    (
        "care /messages x50",
        [],
        f"""SELECT r.*, c.name FROM care.recipient r JOIN care.campaign c ON c.id = r.campaign_id
           WHERE r.msisdn = ANY({NUMBERS})
           ORDER BY coalesce(r.sent_at, r.due_at) DESC, r.id DESC LIMIT 100""",
    ),
]


async def rolled_back(conn: asyncpg.Connection, undo: list[str], query: str) -> tuple[str, float]:
    """EXPLAIN (ANALYZE) ``query`` after ``undo``, in a transaction rolled back after."""
    tx = conn.transaction()
    await tx.start()
    try:
        for statement in undo:
            await conn.execute(statement)
        return await explain(conn, query)
    finally:
        await tx.rollback()


async def explain(conn: asyncpg.Connection, query: str) -> tuple[str, float]:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF) {query}")
    plan = "\n".join(r[0] for r in rows)
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return plan, float(found.group(1)) if found else -1.0


async def main(rows: int, only: str | None) -> None:
    server = None
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
    else:
        server = EmbeddedPostgres.start(Path(tempfile.mkdtemp()) / "pg")
        url = server.url
    try:
        scratch = await ensure_database(url, f"explain_{uuid.uuid4().hex[:8]}")
        await asyncio.to_thread(migrations.upgrade, scratch, SERVICES)
        conn = await asyncpg.connect(scratch.replace("postgresql+asyncpg", "postgresql"))
        print(f"loading {rows} rows per table ...", flush=True)
        cases: list[tuple[str, list[str], str]] = []
        if only in (None, "lists"):
            await conn.execute(LOAD.format(rows=rows))
            cases += [(name, BEFORE if undo else [], query) for name, undo, query in CASES]
        if only in (None, "events"):
            await conn.execute(LOAD_EVENTS.format(rows=rows))
            cases += EVENT_CASES
        for name, undo, query in cases:
            query = query.format(rows=rows)
            await rolled_back(conn, [], query)  # warm the cache for both runs alike
            before, before_ms = await rolled_back(conn, undo, query)
            after, after_ms = await rolled_back(conn, [], query)
            print(f"\n## {name}: {before_ms:.2f} ms -> {after_ms:.2f} ms")
            if undo:
                print("### before\n" + before)
            print("### after\n" + after, flush=True)
        await conn.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["lists", "events"])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.only))
