"""``keepwell bench detect``: set-based detection over a generated population, against a
straightforward per-subscriber Python evaluation of the same rules on a sample."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keepwell.bench._report import QUICK_HELP, Figure, Result, size_help
from keepwell.bench._scratch import Scratch

if TYPE_CHECKING:
    from keepwell.demo import Customer, DemoData

FULL = {"subscribers": 200_000, "days": 60, "sample": 2_000, "seed": 7}
QUICK = {"subscribers": 2_000, "days": 60, "sample": 200, "seed": 7}

# Demo drift kinds and the signal that should catch each.
DRIFT_SIGNALS = {
    "USAGE_DROP": "usage_drop",
    "ZERO_CALLS": "zero_calls",
    "COMPETITOR_HOTLINE": "competitor_hotline",
    "CALL_FORWARDING": "call_forwarding",
    "OTHER_NETWORK": "competitor_marketing",
    "COMPETITOR_MARKETING": "competitor_marketing",
    "SPEND_BELOW_PLAN": "spend_below_plan",
    "LOW_BALANCE": "low_balance",
}


def register(bench: typer.Typer) -> None:
    @bench.command("detect")
    def detect(
        subscribers: Annotated[
            int | None,
            typer.Option(
                min=2, help=size_help("Generated subscribers.", "subscribers", FULL, QUICK)
            ),
        ] = None,
        days: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Days of usage per subscriber.", "days", FULL, QUICK)
            ),
        ] = None,
        sample: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Subscribers evaluated in Python.", "sample", FULL, QUICK)
            ),
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Demo data seed (default 7).")] = None,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Generate usage, run detection for the last day and compare with Python."""
        from keepwell.bench._report import run_bench, sized

        size = sized(
            quick, FULL, QUICK, subscribers=subscribers, days=days, sample=sample, seed=seed
        )
        run_bench("detect", lambda found: _run(found, **size), quick=quick)


def _customer_copy(data: DemoData, customers: Iterator[Customer]) -> Iterator[tuple[Any, ...]]:
    """What profile's events would have put in warning's customer copy (version 1): the
    bench loads it directly, with no profile service running."""
    from services.kit import clock

    team_of = {m.id: m.team_id for m in data.managers}
    now = clock.now()
    for c in customers:
        # No profile here, so no archive id (partners' reads go by it; detection does not).
        yield (
            c.msisdn, 1, c.name, "active", c.tier, c.manager_id, team_of.get(c.manager_id),
            c.plan_name, c.plan_fee, c.contract_end, None, now,
        )  # fmt: skip


def load_part(url: str, subscribers: int, days: int, seed: int, today: str, part: int) -> int:
    """One loader process: half of the customers and their usage, over COPY."""
    from keepwell.demo import generate
    from services.kit.bulk import copy_rows, raw_connection
    from services.warning.repository import CUSTOMER_COLUMNS, USAGE_COLUMNS
    from services.warning.seed import usage_rows

    data = generate(customers=subscribers, seed=seed, today=date.fromisoformat(today))
    half = subscribers // 2
    start, stop = (0, half) if part == 0 else (half, subscribers)

    async def load() -> int:
        async with raw_connection(url) as conn:
            await copy_rows(
                conn,
                "warning",
                "customer",
                (*CUSTOMER_COLUMNS, "updated_at"),
                _customer_copy(data, data.customers(start, stop)),
            )
            rows = usage_rows(data.usage(days=days, start=start, stop=stop))
            return await copy_rows(conn, "warning", "daily_usage", USAGE_COLUMNS, rows)

    return asyncio.run(load())


async def _run(found: Scratch, *, subscribers: int, days: int, sample: int, seed: int) -> Result:
    import time
    from concurrent.futures import ProcessPoolExecutor

    from sqlalchemy import text

    import migrations
    from keepwell.demo import Drift, generate
    from services.kit.db import create_engine, create_sessionmaker, session_scope
    from services.warning import service
    from services.warning.bench_python import evaluate_sample

    today = date(2026, 11, 22)
    assert found.database_url is not None
    url = found.database_url
    await asyncio.to_thread(migrations.upgrade, url, ("warning",))
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(2) as pool:
        parts = [
            loop.run_in_executor(
                pool, load_part, url, subscribers, days, seed, today.isoformat(), part
            )
            for part in (0, 1)
        ]
        usage_rows = sum(await asyncio.gather(*parts))
    load_seconds = time.perf_counter() - started

    engine = create_engine(url, pool_size=2)
    sessions = create_sessionmaker(engine)
    async with engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE warning.daily_usage")
        await conn.exec_driver_sql("ANALYZE warning.customer")
        await conn.commit()
    started = time.perf_counter()
    async with session_scope(sessions) as session:
        result = await service.run_detection(session, today)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    async with session_scope(sessions) as session:
        rerun = await service.run_detection(session, today)
    rerun_seconds = time.perf_counter() - started

    data = generate(customers=subscribers, seed=seed, today=today)
    step = max(1, subscribers // sample)
    sampled = [data.msisdn_of(i) for i in range(0, subscribers, step)][:sample]
    async with sessions() as session:
        py = await evaluate_sample(session, sampled, today)
        fired: dict[str, set[str]] = {}
        rows = await session.execute(text("SELECT msisdn, signal FROM warning.warning"))
        for msisdn, signal in rows:
            fired.setdefault(msisdn, set()).add(signal)
    await engine.dispose()

    agree = sum(1 for m in sampled if py.hits.get(m, set()) == fired.get(m, set()))
    # Signals the per-subscriber evaluation raises that the set-based run missed.
    missed = sum(len(py.hits.get(m, set()) - fired.get(m, set())) for m in sampled)
    python_scaled = py.seconds * subscribers / len(sampled)

    recall: dict[str, list[int]] = {k: [0, 0] for k in DRIFT_SIGNALS}
    steady = steady_flagged = 0
    for index in range(subscribers):
        plan = data.drift_of(index)
        signals = fired.get(data.msisdn_of(index), set())
        if not plan.drifting:
            steady += 1
            # Contract ends and low balances happen to steady customers too.
            steady_flagged += bool(signals - {"contract_expiry", "low_balance"})
            continue
        for kind, signal in DRIFT_SIGNALS.items():
            if Drift[kind] in plan.kinds:
                recall[kind][0] += 1
                recall[kind][1] += signal in signals
    details = {
        "subscribers": subscribers,
        "usage_rows": usage_rows,
        "day": today.isoformat(),
        "load_seconds": round(load_seconds, 1),
        "seconds": round(seconds, 2),
        "warnings": result.raised,
        "query_seconds": result.query_seconds,
        "publish_seconds": result.publish_seconds,
        "rerun_seconds": round(rerun_seconds, 2),
        "rerun_changes": rerun.raised + rerun.updated + rerun.rescored,
        "python_sample": len(sampled),
        "python_sample_seconds": round(py.seconds, 2),
        "python_seconds_scaled": round(python_scaled, 1),
        "python_agrees_with_sql": f"{agree}/{len(sampled)}",
        "recall_by_drift": {k: round(hit / n, 3) if n else None for k, (n, hit) in recall.items()},
        "steady_flagged_share": round(steady_flagged / steady, 4) if steady else None,
    }
    return Result(
        headline=Figure(
            "subscribers_per_second", round(subscribers / seconds), "subscribers/s, SQL"
        ),
        comparison=Figure(
            "python_subscribers_per_second",
            round(len(sampled) / py.seconds) if py.seconds else None,
            "subscribers/s, per-subscriber Python on a sample",
        ),
        # Detection is safe to repeat: the same day again raises nothing new.
        duplicates=rerun.raised,
        lost=missed,
        details=details,
    )
