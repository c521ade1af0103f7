"""arq worker settings for a service: resources in ``ctx``, metrics per job.

arq delivers at least once and fails a job for good on any exception but ``Retry``, so
every job function must be safe to run twice: PostgreSQL holds the state of long work and
Redis only carries the nudge. A job that finds PostgreSQL or Redis unreachable is retried
later rather than failed, and a worker that loses Redis waits for it (:class:`Worker`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import arq.worker
from arq import Retry
from arq.cron import CronJob, cron
from arq.worker import Function, func
from prometheus_client import start_http_server

from services.kit import idempotency
from services.kit.app import Resources
from services.kit.config import Settings, get_settings
from services.kit.events.prune import PRUNE_JOB, prune
from services.kit.events.publish import RELAY_JOB
from services.kit.events.relay import Relay
from services.kit.keys import Signer, require_signing_key
from services.kit.logging import configure_logging
from services.kit.metrics import JOB_DURATION, JOBS
from services.kit.outages import unavailable
from services.kit.redis import queue_name, redis_settings

logger = logging.getLogger("keepwell.worker")

JobFunction = Callable[..., Awaitable[Any]]

RELAY_SWEEP_SECONDS = 5
PRUNE_MINUTE = 17  # past each hour
EVENTS_PRUNE_MINUTE = 47
"""Every hour at this minute each worker prunes its own event tables: an hour's worth of
rows per run, in short batches, rather than a night's at once (half an hour away from the
Idempotency-Key pruning)."""
MAX_TRIES = 20
OUTAGE_RETRY_MAX_SECONDS = 30
"""A job that finds PostgreSQL or Redis down runs again after 2, 4, 8, ... seconds, at
most this far apart: with ``MAX_TRIES`` it outlasts an outage of about eight minutes."""
REDIS_LOST_PAUSE_SECONDS = 1.0


def _measured(service: str, job: JobFunction) -> JobFunction:
    name = job.__name__

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await job(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        except Exception as exc:
            if unavailable(exc) is None:
                raise
            # Not the job's fault: once the server is back the same job succeeds.
            outcome = "retry"
            try_ = int(ctx.get("job_try", 1))
            delay = min(2**try_, OUTAGE_RETRY_MAX_SECONDS)
            logger.warning("%s: %s unreachable, retrying in %ss", name, unavailable(exc), delay)
            raise Retry(defer=delay) from exc
        finally:
            JOBS.labels(service, name, outcome).inc()
            JOB_DURATION.labels(service, name).observe(time.perf_counter() - started)

    return run


_configured_as: str | None = None


def configure_worker_process(name: str, settings: Settings, metrics_of: str) -> None:
    """Logging and the metrics endpoint, once per process: a process that works several
    services' queues (``keepwell worker a b``) serves every service's job metrics on the
    first one's port."""
    global _configured_as
    if _configured_as is not None:
        return
    _configured_as = name
    configure_logging(name, settings.log_level)
    start_http_server(settings.worker_metrics_port(metrics_of), addr=settings.host)


def worker_settings(
    service: str,
    functions: Sequence[JobFunction],
    *,
    cron_jobs: Sequence[CronJob] = (),
    settings: Settings | None = None,
    serve_metrics: bool = True,
) -> type:
    """Build the ``WorkerSettings`` class arq expects for one service's queue."""
    settings = settings or get_settings()

    async def startup(ctx: dict[str, Any]) -> None:
        # The relay signs its deliveries: a worker without the relay's key cannot work.
        require_signing_key(settings, Signer.relay)
        if serve_metrics:
            configure_worker_process(f"{service}-worker", settings, service)
        ctx["resources"] = Resources.open(service, settings)

    async def shutdown(ctx: dict[str, Any]) -> None:
        resources: Resources | None = ctx.get("resources")
        if resources is not None:
            await resources.close()

    registered: list[Function] = [
        func(_measured(service, f), name=f.__name__)  # type: ignore[arg-type]
        for f in functions
    ]
    # Every service publishes events, so every worker relays its own outbox: when nudged
    # after a commit, and every few seconds in case a nudge was lost. No result is kept,
    # so a new nudge can be queued as soon as a run ends. arq names a cron job's run
    # "cron:{name}:{time}" in one key space for all queues, so the sweep's name carries the
    # service: with one name, the first worker to queue a tick took it from all the others.
    relay = _measured(service, relay_events)
    registered.append(func(relay, name=RELAY_JOB, keep_result=0))  # type: ignore[arg-type]
    sweep = cron(
        relay,  # type: ignore[arg-type]
        name=f"{RELAY_JOB}:sweep:{service}",
        second=set(range(0, 60, RELAY_SWEEP_SECONDS)),
        run_at_startup=True,
        keep_result=0,
    )
    # Idempotency-Key answers past their day go, once an hour (services/kit/idempotency.py).
    prune = cron(
        _measured(service, prune_idempotency_keys),  # type: ignore[arg-type]
        name=f"idempotency:prune:{service}",
        minute=PRUNE_MINUTE,
        keep_result=0,
    )
    # And its own event tables of what the retention no longer keeps (one run per service
    # and hour, whichever of its workers queues it first; named per service, as the sweep
    # is).
    pruning = cron(
        _measured(service, prune_events),  # type: ignore[arg-type]
        name=f"{PRUNE_JOB}:{service}",
        minute=EVENTS_PRUNE_MINUTE,
        second=0,
    )
    attributes: dict[str, Any] = {
        "functions": registered,
        "cron_jobs": [*cron_jobs, sweep, prune, pruning],
        "queue_name": queue_name(service),
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": 20,
        "max_tries": MAX_TRIES,
        "job_timeout": 600,
        "keep_result": 3600,
        "health_check_interval": 30,
    }
    return type(f"{service.title()}WorkerSettings", (), attributes)


class Worker(arq.worker.Worker):
    """arq's worker, but one that outlives Redis going away.

    arq's own poll loop ends at the first Redis error, and the process with it
    (python-arq/arq#435, #498). Here a lost Redis pauses the loop instead: jobs already
    running go on (their state is in PostgreSQL), and polling resumes once Redis answers;
    the client reconnects by itself. A job whose end could not be recorded runs again
    when its in-progress key expires, which every job allows.
    """

    _redis_lost = False

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except Exception as exc:
            if unavailable(exc) != "redis":
                raise
            if not self._redis_lost:
                logger.warning("%s: Redis unreachable, waiting for it: %s", self.queue_name, exc)
            self._redis_lost = True
            await asyncio.sleep(REDIS_LOST_PAUSE_SECONDS)
            return
        if self._redis_lost:
            logger.warning("%s: Redis is back", self.queue_name)
            self._redis_lost = False

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id in job_ids:
            try:
                await super().start_jobs([job_id])
            except Exception as exc:
                if unavailable(exc) != "redis":
                    raise
                # arq takes a job slot before asking Redis whether the job is free, and
                # would keep it: give it back, or each outage would shrink the worker.
                self.job_counter -= 1
                self.sem.release()
                raise


@dataclass
class _RelayTurn:
    running: bool = False
    again: bool = False


# Per process, by service: arq hands each job a copy of the worker's context.
_RELAY_TURNS: dict[str, _RelayTurn] = {}


async def relay_events(ctx: dict[str, Any]) -> int:
    """Deliver this service's pending events until none is due, one run at a time per
    worker: a nudge or sweep that comes while a run goes on only asks it to look once
    more. Under a backlog the sweeps, every few seconds, otherwise started a run each,
    which multiplied the batches in flight to every subscriber and the connections held."""
    res = resources_of(ctx)
    turn = _RELAY_TURNS.setdefault(res.service, _RelayTurn())
    if turn.running:
        turn.again = True
        return 0
    turn.running = True
    try:
        relay = Relay(res.service, res.sessionmaker, res.http, res.settings)
        deadline = time.monotonic() + relay.policy.max_run_seconds
        delivered = 0
        while True:
            turn.again = False
            delivered += await relay.run()
            if not turn.again or time.monotonic() >= deadline:
                return delivered
    finally:
        turn.running = False


async def prune_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Delete this service's expired Idempotency-Key answers; how many."""
    res = resources_of(ctx)
    async with res.session() as session:
        return await idempotency.prune(session, res.service)


async def prune_events(ctx: dict[str, Any]) -> dict[str, object]:
    """Delete this service's delivered events and inbox rows older than the retention
    (``KEEPWELL_EVENT_RETENTION_DAYS``); what is left is pruned at the next run."""
    res = resources_of(ctx)
    retention = timedelta(days=res.settings.event_retention_days)
    return (await prune(res.sessionmaker, res.service, older_than=retention)).as_dict()


def resources_of(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["resources"]
    return res
