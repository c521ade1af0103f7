"""``keepwell bench campaign``: a campaign to N recipients through real workers and the sandbox.

Everything runs as in production, each part its own process: arq workers (``keepwell worker
care``) and the sandbox provider (``keepwell care sandbox``) over HTTP. The benchmark uses
the scratch servers every benchmark gets (``_scratch.py``: a new database, on DATABASE_URL's
server or an embedded one, and an embedded Redis of its own), so a running system is never
touched. It runs the campaign twice: undisturbed, and with one
worker killed (SIGKILL) halfway and a new one started. Each run reports messages per second
and checks the two things that matter: nothing sent twice, nothing lost.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keepwell.bench._report import QUICK_HELP, Figure, Result, size_help
from keepwell.bench._scratch import Scratch

if TYPE_CHECKING:
    import httpx


TEMPLATE = "{honorific}您好，{manager_name}祝您生活愉快。"
FULL = {"recipients": 100_000, "workers": 2, "batch_size": 500, "jobs": 8, "lease_seconds": 10}
QUICK = {"recipients": 2_000, "workers": 1, "batch_size": 100, "jobs": 4, "lease_seconds": 4}


def register(bench: typer.Typer) -> None:
    @bench.command("campaign")
    def campaign(
        recipients: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Audience size.", "recipients", FULL, QUICK)),
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Worker processes.", "workers", FULL, QUICK)),
        ] = None,
        batch_size: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Recipients per provider call.", "batch_size", FULL, QUICK)
            ),
        ] = None,
        jobs: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Dispatch jobs per campaign.", "jobs", FULL, QUICK)),
        ] = None,
        lease_seconds: Annotated[
            int | None,
            typer.Option(
                min=1,
                help=size_help(
                    "How long a claimed batch is a worker's (a killed one's comes back after it).",
                    "lease_seconds",
                    FULL,
                    QUICK,
                ),
            ),
        ] = None,
        kill: Annotated[bool, typer.Option(help="Also run with a worker killed midway.")] = True,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Dispatch a campaign to the sandbox, unthrottled; prints JSON."""
        from keepwell.bench._report import run_bench, sized

        size = sized(
            quick,
            FULL,
            QUICK,
            recipients=recipients,
            workers=workers,
            batch_size=batch_size,
            jobs=jobs,
            lease_seconds=lease_seconds,
        )
        run_bench("campaign", lambda found: _run(found, kill=kill, **size), quick=quick, redis=True)


async def _run(
    found: Scratch,
    *,
    recipients: int,
    workers: int,
    batch_size: int,
    jobs: int,
    lease_seconds: int,
    kill: bool,
) -> Result:
    import time

    import httpx

    from keepwell.bench._system import answers, load_care_customers, numbers_from, spawn, until
    from services.kit.embedded import free_port

    assert found.database_url is not None and found.redis_url is not None
    database_url = found.database_url
    scratch = found.dir
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": found.redis_url,
        # Development keys of the bench's own, not those of a system run from this directory.
        "KEEPWELL_DATA_DIR": str(scratch / "data"),
        "CARE_SANDBOX_URL": sandbox_url,
        "CARE_BATCH_SIZE": str(batch_size),
        "CARE_DISPATCH_CONCURRENCY": str(jobs),
        "CARE_RATE_PER_SECOND": "0",
        "CARE_LEASE_SECONDS": str(lease_seconds),
        "CARE_REDRIVE_EVERY_SECONDS": "1",
        "CARE_STALL_SECONDS": "2",
        # The benchmark measures dispatch at any hour of the day.
        "CARE_QUIET_START_HOUR": "0",
        "CARE_QUIET_END_HOUR": "0",
        "KEEPWELL_LOG_LEVEL": "WARNING",
    }
    sandbox = spawn(["care", "sandbox", "--port", str(sandbox_port)], env, scratch / "sandbox.log")
    try:
        async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as client:
            started = time.monotonic()
            await _migrate(database_url)
            await load_care_customers(database_url, numbers_from(13000000000, recipients))
            loaded = time.monotonic() - started
            await until(lambda: answers(client, "/healthz"), 180, "the sandbox to start", [sandbox])
            runs: dict[str, dict[str, object]] = {}
            for name in ["undisturbed", *(["worker_killed"] if kill else [])]:
                runs[name] = await _campaign_run(
                    client, database_url, env, scratch, workers, recipients, name == "worker_killed"
                )
    finally:
        sandbox.terminate()
        sandbox.wait()
    first, second = runs["undisturbed"], runs.get("worker_killed")

    def count(key: str) -> int:
        return sum(int(str(r[key])) for r in runs.values())

    return Result(
        headline=Figure("messages_per_second", _rate(first), "messages/s to the sandbox"),
        comparison=(
            Figure(
                "messages_per_second_worker_killed",
                _rate(second),
                "messages/s, a worker killed midway",
            )
            if second is not None
            else None
        ),
        # Over both runs: a message the sandbox got twice, a recipient never sent to.
        duplicates=count("duplicates"),
        lost=count("lost"),
        details={
            "recipients": recipients,
            "customers_loaded_seconds": round(loaded, 2),
            "workers": workers,
            "batch_size": batch_size,
            "jobs_per_campaign": jobs,
            "lease_seconds": lease_seconds,
            "undisturbed": first,
            "worker_killed": second,
        },
    )


def _rate(run: dict[str, object] | None) -> float | None:
    return None if run is None else float(str(run["messages_per_second"]))


async def _migrate(database_url: str) -> None:
    import asyncio

    import migrations

    await asyncio.to_thread(migrations.upgrade, database_url, ("care",))


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

    from keepwell.bench._system import answers, spawn, until
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
        return spawn(
            ["worker", "care"],
            {**env, "KEEPWELL_WORKER_METRICS_BASE_PORT": str(metrics - 3)},
            scratch / f"worker-{n}.log",
        )

    procs = [start_worker(n) for n in range(workers)]
    async with httpx.AsyncClient() as probe:
        for url, process in zip(metrics_urls, procs, strict=True):
            await until(lambda u=url: answers(probe, u), 180, "a worker to start", [process])  # type: ignore[misc]

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

            await until(halfway, 3600, "half the messages to go out")
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

        await until(completed, 7200, "the campaign to complete")
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
