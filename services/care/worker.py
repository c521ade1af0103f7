"""The care service's arq worker: campaign dispatch, its re-driver and automatic care."""

from __future__ import annotations

from arq.cron import cron

from services.care.config import get_care_settings
from services.care.jobs import dispatch_campaign, plan_daily_care, redrive_dispatch
from services.kit.worker import JobFunction, worker_settings

FUNCTIONS: list[JobFunction] = [dispatch_campaign, redrive_dispatch, plan_daily_care]

_every = max(1, min(get_care_settings().redrive_every_seconds, 30))
CRON_JOBS = [
    # On every worker, so a worker that starts after a crash settles what was left behind
    # without waiting for arq to re-run the dead worker's jobs.
    cron(
        redrive_dispatch,
        name="redrive_dispatch:sweep",
        second=set(range(0, 60, _every)),
        run_at_startup=True,
        keep_result=0,
    ),
    cron(plan_daily_care, name="plan_daily_care:hourly", minute=5, keep_result=0),
]

WorkerSettings = worker_settings("care", FUNCTIONS, cron_jobs=CRON_JOBS)
