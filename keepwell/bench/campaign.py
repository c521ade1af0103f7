"""``keepwell bench campaign``: a campaign to N recipients through real workers and the sandbox.

Everything runs as in production, each part its own process: arq workers (``keepwell worker
care``) and the sandbox provider (``keepwell care sandbox``) over HTTP. The benchmark uses a
scratch database on the configured PostgreSQL server and an embedded Redis of its own, so a
running system is never touched. It runs the campaign twice: undisturbed, and with one
worker killed (SIGKILL) halfway and a new one started. Each run reports messages per second
and checks the two things that matter: nothing sent twice, nothing lost.
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.kit import clock

if TYPE_CHECKING:
    import httpx


TEMPLATE = "{honorific}您好，{manager_name}祝您生活愉快。"


def register(bench: typer.Typer) -> None:
    @bench.command("campaign")
    def campaign(
        recipients: Annotated[int, typer.Option(help="Audience size.")] = 100_000,
        workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
        batch_size: Annotated[int, typer.Option(help="Recipients per provider call.")] = 500,
        jobs: Annotated[int, typer.Option(help="Dispatch jobs per campaign.")] = 8,
        kill: Annotated[bool, typer.Option(help="Also run with a worker killed midway.")] = True,
    ) -> None:
        """Dispatch a campaign to the sandbox, unthrottled; prints JSON."""
        import asyncio
        import json

        result = asyncio.run(_run(recipients, workers, batch_size, jobs, kill))
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


async def _run(
    recipients: int, workers: int, batch_size: int, jobs: int, kill: bool
) -> dict[str, object]:
    import shutil
    import tempfile
    import time

    import httpx

    from services.kit.config import get_settings
    from services.kit.embedded import EmbeddedRedis, free_port
    from services.kit.testing import create_scratch_database, drop_database

    settings = get_settings()
    database_url = await create_scratch_database(settings.database_url, "kw_bench_care")
    scratch = Path(tempfile.mkdtemp(prefix="kw-bench-care-"))
    redis = EmbeddedRedis.start(scratch / "redis")
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "CARE_SANDBOX_URL": sandbox_url,
        "CARE_BATCH_SIZE": str(batch_size),
        "CARE_DISPATCH_CONCURRENCY": str(jobs),
        "CARE_RATE_PER_SECOND": "0",
        "CARE_LEASE_SECONDS": "10",
        "CARE_REDRIVE_EVERY_SECONDS": "1",
        "CARE_STALL_SECONDS": "2",
        # The benchmark measures dispatch at any hour of the day.
        "CARE_QUIET_START_HOUR": "0",
        "CARE_QUIET_END_HOUR": "0",
        "KEEPWELL_LOG_LEVEL": "WARNING",
    }
    sandbox = _spawn(["care", "sandbox", "--port", str(sandbox_port)], env, scratch / "sandbox.log")
    try:
        async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as client:
            started = time.monotonic()
            await _migrate(database_url)
            await _load_customers(database_url, recipients)
            loaded = time.monotonic() - started
            await _until(lambda: _answers(client, "/healthz"), 180, "the sandbox to start")
            runs: dict[str, object] = {}
            for name in ["undisturbed", *(["worker_killed"] if kill else [])]:
                runs[name] = await _campaign_run(
                    client, database_url, env, scratch, workers, recipients, name == "worker_killed"
                )
        first = runs["undisturbed"]
        assert isinstance(first, dict)
        return {
            **first,
            "customers_loaded_seconds": round(loaded, 2),
            "workers": workers,
            "batch_size": batch_size,
            "jobs_per_campaign": jobs,
            "worker_killed": runs.get("worker_killed"),
        }
    finally:
        sandbox.terminate()
        sandbox.wait()
        redis.stop()
        await drop_database(database_url)
        shutil.rmtree(scratch, ignore_errors=True)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    import os
    import sys

    from services.kit.processes import die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "keepwell", *args],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    import httpx

    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _migrate(database_url: str) -> None:
    import asyncio

    import migrations

    await asyncio.to_thread(migrations.upgrade, database_url, ("care",))


async def _load_customers(database_url: str, count: int) -> None:
    from datetime import date
    from decimal import Decimal

    from services.kit.bulk import copy_rows, raw_connection

    now = clock.now()
    columns = [
        "msisdn", "version", "name", "gender", "honorific", "birthday", "region", "city",
        "time_zone", "join_date", "status", "tier", "service_level", "lifecycle", "manager_id",
        "manager_name", "team_id", "balance", "sms_opt_out", "do_not_disturb", "taboos", "tags",
        "interests", "important_dates", "custom", "updated_at",
    ]  # fmt: skip
    rows = (
        (
            str(13000000000 + i), 1, "客户" + str(i % 1000), "female" if i % 2 else "male", "",
            date(1980, 1 + i % 12, 1 + i % 28), "广东", "深圳", "Asia/Shanghai",
            date(2015, 1, 1), "active", "gold", "B", "maturity", f"m{i % 200}", "李经理",
            f"t{i % 20}", Decimal("88.00"), False, False, "[]", "[]", "[]", "[]", "{}", now,
        )
        for i in range(count)
    )  # fmt: skip
    async with raw_connection(database_url) as conn:
        await copy_rows(conn, "care", "customer", columns, rows)
        await conn.execute("ANALYZE care.customer")


async def _campaign_run(
    client: httpx.AsyncClient,
    database_url: str,
    env: dict[str, str],
    scratch: Path,
    workers: int,
    recipients: int,
    kill_one: bool,
) -> dict[str, object]:
    import signal
    import time

    import httpx
    from sqlalchemy import text

    from services.care import service
    from services.care.config import CareSettings
    from services.care.schemas import CampaignCreate
    from services.kit.app import Resources
    from services.kit.auth import Principal, Role
    from services.kit.config import get_settings
    from services.kit.embedded import free_port

    await client.post("/reset")
    await client.post("/control", json={"keep": 0})

    metrics_urls: list[str] = []

    def start_worker(n: int) -> subprocess.Popen[bytes]:
        # A worker serves metrics once started: that is how we know it is ready.
        metrics = free_port()
        metrics_urls.append(f"http://127.0.0.1:{metrics}/")
        return _spawn(
            ["worker", "care"],
            {**env, "KEEPWELL_WORKER_METRICS_BASE_PORT": str(metrics - 3)},
            scratch / f"worker-{n}.log",
        )

    procs = [start_worker(n) for n in range(workers)]
    async with httpx.AsyncClient() as probe:
        for url in metrics_urls:
            await _until(lambda u=url: _answers(probe, u), 180, "a worker to start")  # type: ignore[misc]

    settings = get_settings().model_copy(
        update={"database_url": database_url, "redis_url": env["REDIS_URL"]}
    )
    res = Resources.open("care", settings)
    care = CareSettings().model_copy(
        update={"dispatch_concurrency": int(env["CARE_DISPATCH_CONCURRENCY"])}
    )
    supervisor = Principal(user_id="bench", role=Role.supervisor)
    try:
        async with res.session() as session:
            campaign = await service.create_campaign(
                session,
                CampaignCreate(
                    name="压测活动", template="{honorific}您好，{manager_name}祝您生活愉快。"
                ),
                supervisor,
            )
            await service.preview(session, campaign.id, care)
        materialise_started = time.monotonic()
        async with res.session() as session:
            await service.approve(session, campaign.id, supervisor, care)
        started = time.monotonic()
        audience_seconds = started - materialise_started

        killed_at: int | None = None
        if kill_one:

            async def halfway() -> bool:
                stats = (await client.get("/stats")).json()
                return int(stats["accepted"]) >= recipients // 2

            await _until(halfway, 3600, "half the messages to go out")
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            killed_at = int((await client.get("/stats")).json()["accepted"])
            procs.append(start_worker(len(procs)))

        async def completed() -> bool:
            async with res.engine.connect() as conn:
                status = (
                    await conn.execute(
                        text("SELECT status FROM care.campaign WHERE id = :c"), {"c": campaign.id}
                    )
                ).scalar_one()
            return bool(status == "completed")

        await _until(completed, 7200, "the campaign to complete")
        seconds = time.monotonic() - started
        stats = (await client.get("/stats")).json()
        async with res.engine.connect() as conn:
            states: dict[str, int] = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT state, count(*) FROM care.recipient WHERE campaign_id = :c "
                            "GROUP BY state"
                        ),
                        {"c": campaign.id},
                    )
                ).all()
            )
    finally:
        await res.close()
        for process in procs:
            if process.poll() is None:
                process.terminate()
        for process in procs:
            process.wait()
    eligible = sum(n for s, n in states.items() if s not in ("suppressed", "control"))
    return {
        "recipients": sum(states.values()),
        "audience_seconds": round(audience_seconds, 2),
        "seconds": round(seconds, 2),
        "messages_per_second": round(int(stats["unique"]) / seconds, 1),
        "duplicates": int(stats["duplicates"]),
        "lost": eligible - int(stats["unique"]),
        "recipient_states": states,
        **({"killed_after_messages": killed_at} if kill_one else {}),
    }
