"""``keepwell bench import-customers --rows N``: the bulk import against a per-row ORM insert.

Creates a scratch database (on DATABASE_URL's server, or an embedded PostgreSQL when
DATABASE_URL is not set), migrates it, loads the demo teams and managers, writes N demo
customers to a CSV file and loads it through the same code as ``keepwell import customers``
(events included). Then inserts a sample of other customers one ORM insert and commit per
row, the naive way, and prints both rates and their ratio as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from services.kit import clock


def register(bench: typer.Typer) -> None:
    @bench.command("import-customers")
    def import_customers(
        rows: Annotated[int, typer.Option(help="Customers in the generated file.")] = 100_000,
        naive_sample: Annotated[int, typer.Option(help="Rows inserted the naive way.")] = 2_000,
        seed: Annotated[int, typer.Option(help="Demo data seed.")] = 7,
    ) -> None:
        """Bulk import of N generated customers into an empty database, against per-row
        ORM inserts; prints JSON."""
        with tempfile.TemporaryDirectory(prefix="kw-bench-") as scratch:
            result = _run(Path(scratch), rows, naive_sample, seed)
        typer.echo(json.dumps(result, indent=2))


def _run(scratch: Path, rows: int, sample: int, seed: int) -> dict[str, Any]:
    import migrations
    from services.kit.embedded import EmbeddedPostgres
    from services.kit.testing import create_scratch_database, drop_database

    server = os.environ.get("DATABASE_URL")
    embedded = None
    if server is None:
        embedded = EmbeddedPostgres.start(scratch / "postgres")
        server = embedded.url
    try:
        url = asyncio.run(create_scratch_database(server, "kw_bench"))
        try:
            migrations.upgrade(url, ("profile",))
            return asyncio.run(_measure(url, scratch, rows, sample, seed)) | {
                "database": "embedded" if embedded else "DATABASE_URL server"
            }
        finally:
            asyncio.run(drop_database(url))
    finally:
        if embedded is not None:
            embedded.stop()


async def _measure(url: str, scratch: Path, rows: int, sample: int, seed: int) -> dict[str, Any]:

    from keepwell.demo import generate
    from services.kit.bulk import copy_rows, raw_connection
    from services.profile.importer import import_file

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
    path = scratch / "customers.csv"
    _write_csv(path, data.customers(stop=rows))
    generate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    async with raw_connection(url) as conn:
        summary = await import_file(conn, path, actor="bench")
        events = int(await conn.fetchval("SELECT count(*) FROM profile.outbox"))
    seconds = time.perf_counter() - started
    if summary.inserted != rows:
        raise RuntimeError(f"expected {rows} inserted, got {summary.model_dump_json()}")

    naive_seconds = await _naive(url, data.customers(start=rows))
    bulk_rate = rows / seconds
    naive_rate = sample / naive_seconds
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(bulk_rate),
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
        "ratio": round(bulk_rate / naive_rate, 1),
    }


def _write_csv(path: Path, customers: Any) -> None:
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
                    c.join_date, c.plan_name, c.plan_fee, c.contract_end or "", c.balance,
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
