"""``keepwell bench import-customers --rows N``: the bulk import against a per-row ORM insert.

Creates a scratch database (on DATABASE_URL's server, or an embedded PostgreSQL when
DATABASE_URL is not set), migrates it, loads the demo teams and managers, writes N demo
customers to a CSV file and loads it through the same code as ``keepwell import customers``
(events included), then loads a changed copy of it (every balance moved: N updates). Both
loads run in a process of their own, so its peak RSS is the import's, not the generator's.
Then inserts a sample of other customers one ORM insert and commit per row, the naive way,
and prints the rates and the ratio of new rows to naive ones as JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keepwell.bench._report import QUICK_HELP, Figure, Result, size_help
from keepwell.bench._scratch import Scratch
from services.kit import clock

if TYPE_CHECKING:
    from services.profile.schemas import ImportSummary

FULL = {"rows": 100_000, "naive_sample": 2_000, "seed": 7}
QUICK = {"rows": 2_000, "naive_sample": 200, "seed": 7}


def register(bench: typer.Typer) -> None:
    @bench.command("import-customers")
    def import_customers(
        rows: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Customers in the generated file.", "rows", FULL, QUICK)
            ),
        ] = None,
        naive_sample: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Rows inserted the naive way.", "naive_sample", FULL, QUICK)
            ),
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Demo data seed (default 7).")] = None,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Bulk import of N generated customers into an empty database, against per-row
        ORM inserts; prints JSON."""
        from keepwell.bench._report import run_bench, sized

        size = sized(quick, FULL, QUICK, rows=rows, naive_sample=naive_sample, seed=seed)
        run_bench("import-customers", lambda found: _run(found, **size), quick=quick)


async def _run(found: Scratch, *, rows: int, naive_sample: int, seed: int) -> Result:
    import migrations

    assert found.database_url is not None
    await asyncio.to_thread(migrations.upgrade, found.database_url, ("profile",))
    return await _measure(found.database_url, found.dir, rows, naive_sample, seed)


async def _measure(url: str, scratch: Path, rows: int, sample: int, seed: int) -> Result:

    from keepwell.demo import generate
    from services.kit.bulk import copy_rows, raw_connection

    data = generate(customers=rows + sample, seed=seed)
    now = clock.now()
    async with raw_connection(url) as conn:
        await copy_rows(
            conn,
            "profile",
            "team",
            ("id", "name", "region", "supervisor_name", "created_at"),
            ((t.id, t.name, t.region, t.supervisor_name, now) for t in data.teams),
        )
        await copy_rows(
            conn,
            "profile",
            "manager",
            ("id", "name", "phone", "team_id", "active", "created_at"),
            ((m.id, m.name, m.phone, m.team_id, True, now) for m in data.managers),
        )

    started = time.perf_counter()
    path, changed = scratch / "customers.csv", scratch / "changed.csv"
    _write_csv(path, data.customers(stop=rows))
    _write_csv(changed, data.customers(stop=rows), balance_change=Decimal("1.00"))
    generate_seconds = time.perf_counter() - started

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as child:
        loop = asyncio.get_running_loop()
        seconds, summary = await loop.run_in_executor(child, _import, url, path)
        update_seconds, update, peak_kib = await loop.run_in_executor(
            child, _import_with_peak, url, changed
        )
    async with raw_connection(url) as conn:
        events = int(await conn.fetchval("SELECT count(*) FROM profile.outbox"))
        # Every row of the file stored once, with its one customer.created event.
        check = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM profile.customer) AS stored,"
            " count(DISTINCT aggregate_id) AS announced, count(*) AS created"
            " FROM profile.outbox WHERE type = 'customer.created'"
        )
        # ... and one customer.updated for each row of the changed file.
        updated_events = int(
            await conn.fetchval(
                "SELECT count(DISTINCT aggregate_id) FROM profile.outbox"
                " WHERE type = 'customer.updated'"
            )
        )
    if summary.rejected or update.rejected:
        raise RuntimeError(f"the generated file had rejected rows: {summary.model_dump_json()}")

    naive_seconds = await _naive(url, data.customers(start=rows))
    bulk_rate = rows / seconds
    naive_rate = sample / naive_seconds
    stored, announced, created = check["stored"], check["announced"], check["created"]
    details = {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(bulk_rate),
        "update": {
            "rows": rows,
            "updated": update.updated,
            "seconds": round(update_seconds, 2),
            "rows_per_second": round(rows / update_seconds),
        },
        "peak_rss_mb": round(peak_kib / 1024),
        "events_written": events,
        "file_bytes": path.stat().st_size,
        "generate_seconds": round(generate_seconds, 2),
        "naive": {
            "rows": sample,
            "seconds": round(naive_seconds, 2),
            "rows_per_second": round(naive_rate),
            "projected_seconds_for_rows": round(rows / naive_rate),
            "method": "one ORM insert and commit per row, no events",
        },
    }
    return Result(
        headline=Figure("rows_per_second", round(bulk_rate), "rows/s, bulk import with events"),
        comparison=Figure("naive_rows_per_second", round(naive_rate), "rows/s, ORM row by row"),
        duplicates=created - announced,
        lost=(rows - stored) + (stored - announced) + (rows - updated_events),
        details=details,
    )


def _import(url: str, path: Path) -> tuple[float, ImportSummary]:
    """One ``keepwell import customers`` of ``path``, as its command runs it."""
    from services.kit.bulk import raw_connection
    from services.profile.importer import import_file

    async def run() -> tuple[float, ImportSummary]:
        async with raw_connection(url) as conn:
            started = time.perf_counter()
            summary = await import_file(conn, path, actor="bench")
            return time.perf_counter() - started, summary

    return asyncio.run(run())


def _import_with_peak(url: str, path: Path) -> tuple[float, ImportSummary, int]:
    """:func:`_import`, and the process's peak RSS (KiB) over both loads."""
    import resource

    seconds, summary = _import(url, path)
    return seconds, summary, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _write_csv(path: Path, customers: Any, balance_change: Decimal = Decimal(0)) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "msisdn", "name", "gender", "birthday", "region", "city", "time_zone",
                "join_date", "plan_name", "plan_fee", "contract_end", "balance", "tier",
                "service_level", "lifecycle", "manager_id", "interests", "preferences",
                "taboos", "important_dates", "sms_opt_out", "preferred_hours_start",
                "preferred_hours_end",
            ]
        )  # fmt: skip
        for c in customers:
            start, end = c.preferred_contact_hours
            dates = [{"label": label, "date": d.isoformat()} for label, d in c.important_dates]
            out.writerow(
                [
                    c.msisdn, c.name, c.gender, c.birthday, c.region, c.city, c.time_zone,
                    c.join_date, c.plan_name, c.plan_fee, c.contract_end or "",
                    c.balance + balance_change,
                    c.tier, c.service_level, c.lifecycle, c.manager_id, "|".join(c.interests),
                    "|".join(c.preferences), "|".join(c.taboos),
                    json.dumps(dates, ensure_ascii=False) if dates else "",
                    "true" if c.sms_opt_out else "false", start, end,
                ]
            )  # fmt: skip


async def _naive(url: str, customers: Any) -> float:
    from services.kit.db import create_engine, create_sessionmaker
    from services.profile.models import Customer, CustomerStatus

    engine = create_engine(url, pool_size=1)
    sessions = create_sessionmaker(engine)
    try:
        started = time.perf_counter()
        for c in customers:
            start, end = c.preferred_contact_hours
            async with sessions() as session:
                session.add(
                    Customer(
                        msisdn=c.msisdn, name=c.name, gender=c.gender, birthday=c.birthday,
                        region=c.region, city=c.city, time_zone=c.time_zone,
                        join_date=c.join_date, plan_name=c.plan_name, plan_fee=c.plan_fee,
                        contract_end=c.contract_end, balance=c.balance,
                        status=CustomerStatus.active,
                        tier=c.tier, service_level=c.service_level, lifecycle=c.lifecycle,
                        manager_id=c.manager_id, interests=list(c.interests),
                        preferences=list(c.preferences), taboos=list(c.taboos),
                        important_dates=[
                            {"label": label, "date": d.isoformat()}
                            for label, d in c.important_dates
                        ],
                        sms_opt_out=c.sms_opt_out, preferred_hours_start=start,
                        preferred_hours_end=end,
                    )
                )  # fmt: skip
                await session.commit()
        return time.perf_counter() - started
    finally:
        await engine.dispose()
