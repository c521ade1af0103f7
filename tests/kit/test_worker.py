"""Workers: jobs run from Redis with the service's resources, and are counted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.kit.config import SERVICES, Settings
from services.kit.redis import create_redis, queue_name
from services.kit.worker import resources_of, worker_settings


async def count_customers(ctx: dict[str, Any]) -> int:
    async with resources_of(ctx).session() as session:
        return int(
            (await session.execute(text("SELECT count(*) FROM profile.customer"))).scalar_one()
        )


async def explode(ctx: dict[str, Any]) -> None:
    raise ValueError("boom")


def jobs(function: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "keepwell_jobs_total", {"service": "complaint", "function": function, "outcome": outcome}
    )
    return value or 0.0


async def test_a_worker_runs_jobs_with_a_database_session_and_counts_them(
    settings: Settings,
) -> None:
    config = worker_settings(
        "complaint", [count_customers, explode], settings=settings, serve_metrics=False
    )
    redis: ArqRedis = create_redis(settings.redis_url, "complaint")
    before_ok, before_error = jobs("count_customers", "ok"), jobs("explode", "error")
    try:
        ok = await redis.enqueue_job("count_customers", _queue_name=queue_name("complaint"))
        bad = await redis.enqueue_job("explode", _queue_name=queue_name("complaint"))
        assert ok is not None and bad is not None
        worker = Worker(
            functions=config.functions,  # type: ignore[attr-defined]
            queue_name=config.queue_name,  # type: ignore[attr-defined]
            redis_pool=redis,
            on_startup=config.on_startup,  # type: ignore[attr-defined]
            on_shutdown=config.on_shutdown,  # type: ignore[attr-defined]
            burst=True,
            poll_delay=0.05,
        )
        await worker.main()
        await worker.close()
        assert await ok.result(timeout=5) == 0
    finally:
        await redis.aclose()
    assert jobs("count_customers", "ok") == before_ok + 1
    assert jobs("explode", "error") == before_error + 1


async def test_every_service_queues_its_own_relay_sweep_on_one_redis(settings: Settings) -> None:
    """Workers of all services share one Redis: each must sweep its own outbox every tick,
    or a lost nudge leaves that service's events undelivered."""
    redis: ArqRedis = create_redis(settings.redis_url, "profile")
    now = datetime.now(UTC)
    try:
        for service in SERVICES:
            config = worker_settings(service, [], settings=settings, serve_metrics=False)
            worker = Worker(
                functions=config.functions,  # type: ignore[attr-defined]
                cron_jobs=config.cron_jobs,  # type: ignore[attr-defined]
                queue_name=config.queue_name,  # type: ignore[attr-defined]
                redis_pool=redis,
            )
            await worker.run_cron(now, delay=0.5)
        queued = {s: await redis.zcard(queue_name(s)) for s in SERVICES}
        assert queued == {s: 1 for s in SERVICES}
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_every_service_prunes_its_own_event_tables_hourly_under_its_own_cron_name(
    settings: Settings,
) -> None:
    """arq keys a cron run as {name}:{time} across all queues: one name for every service
    would let the first worker's tick prune only its own schema."""
    from datetime import timedelta

    from services.kit.events.prune import PRUNE_JOB
    from services.kit.worker import EVENTS_PRUNE_MINUTE

    crons = {
        s: worker_settings(s, [], settings=settings, serve_metrics=False).cron_jobs  # type: ignore[attr-defined]
        for s in SERVICES
    }
    names = {s: [c.name for c in jobs if c.name.startswith(PRUNE_JOB)] for s, jobs in crons.items()}
    assert names == {s: [f"{PRUNE_JOB}:{s}"] for s in SERVICES}

    redis: ArqRedis = create_redis(settings.redis_url, "profile")
    before = datetime.now(UTC).replace(minute=EVENTS_PRUNE_MINUTE, second=0, microsecond=0)
    before -= timedelta(hours=1, seconds=1)  # a second before an hourly run
    try:
        for service in SERVICES:
            config = worker_settings(service, [], settings=settings, serve_metrics=False)
            worker = Worker(
                functions=config.functions,  # type: ignore[attr-defined]
                cron_jobs=config.cron_jobs,  # type: ignore[attr-defined]
                queue_name=config.queue_name,  # type: ignore[attr-defined]
                redis_pool=redis,
            )
            await worker.run_cron(before, delay=0.5)  # plans the next run
            await worker.run_cron(before + timedelta(seconds=1), delay=0.5)  # it is due
        queued = {
            s: [
                job.decode()
                for job in await redis.zrange(queue_name(s), 0, -1)
                if job.decode().startswith(f"{PRUNE_JOB}:")
            ]
            for s in SERVICES
        }
        assert {s: [j.rsplit(":", 1)[0] for j in jobs] for s, jobs in queued.items()} == {
            s: [f"{PRUNE_JOB}:{s}"] for s in SERVICES
        }
    finally:
        await redis.flushdb()
        await redis.aclose()
