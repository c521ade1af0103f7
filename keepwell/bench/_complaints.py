"""The body of ``keepwell bench complaints`` (kept apart so the CLI starts fast)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

import migrations
from keepwell.bench._report import Figure, Result
from keepwell.bench._scratch import Scratch
from services.kit import clock
from services.kit.auth import Principal, Role, issue_token
from services.kit.config import Settings
from services.kit.embedded import free_port

CATEGORIES = ["network_signal", "billing", "service_attitude", "tariff", "points", "other"]
CUSTOMERS = 5000


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    from services.kit.processes import die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "keepwell", *args],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


async def _until_up(
    url: str, process: subprocess.Popen[bytes] | None = None, within: float = 120
) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{url}: its process exited with code {process.returncode}")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def _msisdn(i: int) -> str:
    return str(13500000000 + i)


async def _prepare(database_url: str, settings: Settings) -> None:
    """Defaults, and the customers in the complaint and warning read models (what profile's
    events would have put there), with escalation contacts for their teams."""
    from sqlalchemy import text

    from services.complaint import service
    from services.kit.app import Resources

    res = Resources.open("complaint", settings)
    try:
        async with res.session() as session:
            await service.install_defaults(session)
            await session.execute(
                text(
                    "INSERT INTO complaint.customer (msisdn, version, name, honorific, status,"
                    " tier, manager_id, team_id, updated_at)"
                    " SELECT (13500000000 + i)::text, 1, '客户' || i, '先生', 'active',"
                    " (ARRAY['diamond','gold','silver','none'])[1 + i % 4], 'm' || (i % 50),"
                    " 't' || (i % 5), now() FROM generate_series(0, :n - 1) AS i"
                ),
                {"n": CUSTOMERS},
            )
            await session.execute(
                text(
                    "INSERT INTO warning.customer (msisdn, version, name, status, tier,"
                    " manager_id, team_id, plan_name, plan_fee, contract_end, updated_at)"
                    " SELECT msisdn, 1, name, status, tier, manager_id, team_id, '全球通', 199,"
                    " NULL, now() FROM complaint.customer"
                ),
            )
            await session.execute(
                text(
                    "INSERT INTO complaint.escalation_contact (team_id, supervisor_id,"
                    " escalation_manager_id, updated_by, updated_at)"
                    " SELECT 't' || i, 'sup-' || i, 'boss', 'bench', now()"
                    " FROM generate_series(0, 4) AS i"
                )
            )
    finally:
        await res.close()


async def _open_tickets(url: str, token: str, total: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(total))
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits
    ) as client:
        # Warm up connections and the process's caches (not measured).
        for i in range(concurrency):
            await client.post("/complaints", json=_body(rng, i))

        async def worker() -> None:
            for n in counter:
                started = time.perf_counter()
                try:
                    r = await client.post("/complaints", json=_body(rng, n))
                    outcome = None if r.status_code == 201 else str(r.status_code)
                except httpx.HTTPError as exc:  # a timeout under load is a result, not a crash
                    outcome = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if outcome is not None:
                    errors[outcome] = errors.get(outcome, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": total,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "requests_per_second": round(total / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "errors": errors,
    }


def _body(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "msisdn": _msisdn(rng.randrange(CUSTOMERS)),
        "channel": rng.choice(["hotline", "app", "store", "regulator"]),
        "category": rng.choice(CATEGORIES),
        "description": f"压测投诉 {n}：信号差，多次断线",
        "needs": ["be_heard", "fix_now"],
    }


async def _load_open_tickets(database_url: str, settings: Settings, total: int, due: int) -> None:
    """``total`` open tickets with a first-response and a resolution clock; ``due`` of them
    breached a minute ago (past due, not yet escalated), the rest due in hours."""
    from sqlalchemy import text

    from services.kit.db import create_engine

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE complaint.sla_alert"))
            await conn.execute(text(_TICKETS_SQL), {"n": total})
            await conn.execute(text(_CLOCKS_SQL), {"n": total, "due": due})
            await conn.execute(text("ANALYZE complaint.sla_clock"))
            await conn.execute(text("ANALYZE complaint.ticket"))
    finally:
        await engine.dispose()


_TICKETS_SQL = """
INSERT INTO complaint.ticket (id, number, msisdn, channel, category, description, severity,
  requested_severity, state, needs, handler_id, team_id, tier, is_repeat, version, opened_at,
  opened_by, updated_at, reopened_count, breached)
SELECT 10000000 + i, 'TSB' || (10000000 + i), (13500000000 + i % 5000)::text, 'hotline',
  'other', '压测', 'normal', 'normal', 'acknowledged', '[]', 'm' || (i % 50), 't' || (i % 5),
  'gold', false, 1, now() - interval '1 day', 'bench', now(), 0, false
FROM generate_series(0, :n - 1) AS i
"""

# Two clocks per ticket; for the first ``due`` tickets the step clock breached a minute ago
# (warned already, not yet escalated); every other clock is due in one hour to ten hours.
_CLOCKS_SQL = """
INSERT INTO complaint.sla_clock (ticket_id, metric, state, target_minutes, business,
  started_at, segment_start, used_seconds, paused_seconds, due_at, cycle, alert_level,
  next_alert_at)
SELECT 10000000 + i, m.metric, 'running', 480, true, now() - interval '1 day',
  now() - interval '1 day', 0, 0, d.due, 1, CASE WHEN d.late THEN 1 ELSE 0 END,
  CASE WHEN d.late THEN d.due ELSE d.due - interval '15 minutes' END
FROM generate_series(0, :n - 1) AS i
CROSS JOIN (VALUES ('facts_clarified'), ('resolution')) AS m(metric)
CROSS JOIN LATERAL (SELECT i < :due AND m.metric = 'facts_clarified' AS late) AS k
CROSS JOIN LATERAL (SELECT k.late, CASE
    WHEN k.late THEN now() - interval '1 minute'
    WHEN m.metric = 'resolution' THEN now() + interval '5 days'
    ELSE now() + interval '1 hour' + (i % 600) * interval '1 minute' END AS due) AS d
"""


def _sweeper(database_url: str, redis_url: str, start_at: float, out: Any) -> None:
    """One sweeper process: waits for the common start instant, sweeps until none is due."""
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, KEEPWELL_LOG_LEVEL="WARNING")

    async def go() -> dict[str, Any]:
        from services.complaint.jobs import sla_sweep
        from services.kit.app import Resources
        from services.kit.config import get_settings

        res = Resources.open("complaint", get_settings())
        try:
            async with res.session() as session:  # connect before the start
                await session.execute(__import__("sqlalchemy").text("SELECT 1"))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            started = time.time()
            totals = await sla_sweep({"resources": res})
            return {**totals, "started": started, "ended": time.time()}
        finally:
            await res.close()

    out.put(asyncio.run(go()))


async def _sweep(database_url: str, redis_url: str, sweepers: int) -> dict[str, Any]:
    from sqlalchemy import text

    from services.kit.db import create_engine

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0
    processes = [
        ctx.Process(target=_sweeper, args=(database_url, redis_url, start_at, out))
        for _ in range(sweepers)
    ]
    for p in processes:
        p.start()
    results = [await asyncio.to_thread(out.get, True, 300) for _ in processes]
    for p in processes:
        p.join(30)
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE level >= 2) AS escalations,"
                        " count(*) - count(DISTINCT (ticket_id, metric, level)) AS duplicates,"
                        " count(DISTINCT ticket_id) FILTER (WHERE level >= 2) AS tickets"
                        " FROM complaint.sla_alert"
                    )
                )
            ).one()
            events = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM complaint.outbox"
                        " WHERE type IN ('complaint.escalated', 'complaint.sla_breached')"
                    )
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return {
        "seconds": round(seconds, 2),
        "escalations_written": row.escalations,
        "tickets_escalated": row.tickets,
        "duplicates": row.duplicates,
        "events_written": events,
        "per_sweeper": [
            {k: r[k] for k in ("breaches", "escalations", "warnings", "rounds")} for r in results
        ],
    }


async def run(
    found: Scratch, *, requests: int, concurrency: int, tickets: int, past_due: int, sweepers: int
) -> Result:
    assert found.database_url is not None and found.redis_url is not None
    scratch, database_url, redis_url = found.dir, found.database_url, found.redis_url
    began = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - began, 1)

    async with AsyncExitStack() as stack:
        ports = {name: free_port() for name in ("profile", "warning", "care", "complaint")}
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            # Development keys of the bench's own, not those of a system run from here.
            "KEEPWELL_DATA_DIR": str(scratch / "data"),
            "KEEPWELL_LOG_LEVEL": "WARNING",
            # As many connections as requests in flight (pool plus overflow).
            "KEEPWELL_DB_POOL_SIZE": str(max(10, (concurrency + 1) // 2)),
            "KEEPWELL_WORKER_METRICS_BASE_PORT": str(free_port()),
            **{f"KEEPWELL_{n.upper()}_PORT": str(p) for n, p in ports.items()},
            **{f"KEEPWELL_{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()},
        }
        os.environ.update(env)
        settings = Settings()
        running: list[subprocess.Popen[bytes]] = []

        def stop_all() -> None:
            for p in running:
                if p.poll() is None:
                    p.terminate()
            for p in running:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()

        stack.callback(stop_all)
        # The services import their code while the database is migrated (they read no
        # table before a request), as under `keepwell run`.
        for name in ports:
            running.append(_spawn(["serve", name], env, scratch / f"{name}.log"))
        await asyncio.to_thread(migrations.upgrade, database_url)
        await _prepare(database_url, settings)
        phase("migrated")
        # The complaint worker relays complaint.opened to warning's and care's consumers (as
        # in production; care turns it into the acknowledgement SMS, its dispatch is not run).
        worker = _spawn(["worker", "complaint"], env, scratch / "worker.log")
        running.append(worker)
        for port, process in zip(ports.values(), running, strict=False):
            await _until_up(f"http://127.0.0.1:{port}", process)
        phase("services_up")
        token = issue_token(
            Principal(user_id="bench", role=Role.operator), settings, ttl_seconds=3600
        )
        opening = await _open_tickets(
            f"http://127.0.0.1:{ports['complaint']}", token, requests, concurrency
        )
        phase("tickets_opened")
        # Give the relay up to 5 s to catch up, then measure how far it got.
        from sqlalchemy import text

        from services.kit.db import create_engine

        engine = create_engine(database_url, pool_size=1)
        waited = time.monotonic()
        async with engine.connect() as conn:
            while True:
                delivered = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE status = 'delivered'), count(*)"
                            " FROM complaint.delivery"
                        )
                    )
                ).one()
                await conn.rollback()  # the next look sees what committed since
                if delivered[0] == delivered[1] or time.monotonic() - waited >= 5:
                    break
                await asyncio.sleep(0.25)
            caught_up = time.monotonic() - waited
            warnings = (
                await conn.execute(
                    text("SELECT count(*) FROM warning.warning WHERE signal = 'complaint'")
                )
            ).scalar_one()
        await engine.dispose()
        opening["events_delivered_5s_after"] = f"{delivered[0]}/{delivered[1]}"
        opening["events_delivered_after_seconds"] = (
            round(caught_up, 1) if delivered[0] == delivered[1] else None
        )
        opening["complaint_warnings_open"] = warnings
        # (b) the sweep: the worker's own cron sweep stopped, so only the two sweepers run.
        worker.terminate()
        worker.wait(15)
        started = time.perf_counter()
        await _load_open_tickets(database_url, settings, tickets, past_due)
        load_seconds = time.perf_counter() - started
        phase("tickets_loaded")
        sweep = await _sweep(database_url, redis_url, sweepers)
        phase("swept")
        sweep.update(open_tickets=tickets, past_due=past_due, sweepers=sweepers)
        sweep["load_seconds"] = round(load_seconds, 1)
    cores = os.cpu_count()
    details = {
        "when": clock.now().isoformat(timespec="seconds"),
        "setup": (
            "complaint, warning, care and profile services each a uvicorn process; the "
            "complaint worker relaying complaint.opened to warning's and care's consumers "
            f"during (a); {cores} cores shared with everything else on the machine (other "
            "test runs included): figures are indicative"
        ),
        "phases_at_seconds": phases,
        "open_tickets_http": opening,
        "sla_sweep": sweep,
        "targets": {
            "open_tickets_http": ">= 250 requests/s, p99 <= 250 ms",
            "sla_sweep": "<= 3 s, escalations == past due, 0 duplicates",
        },
        "met": {
            "open_tickets_http": opening["requests_per_second"] >= 250 and opening["p99_ms"] <= 250,
            "sla_sweep": sweep["seconds"] <= 3
            and sweep["tickets_escalated"] == past_due
            and sweep["duplicates"] == 0,
        },
    }
    return Result(
        headline=Figure(
            "requests_per_second", opening["requests_per_second"], "tickets opened/s over HTTP"
        ),
        comparison=Figure("target_requests_per_second", 250, "tickets opened/s, the target"),
        # The sweep: an alert written twice; a past-due ticket no sweeper escalated.
        duplicates=sweep["duplicates"],
        lost=past_due - sweep["tickets_escalated"],
        details=details,
    )
