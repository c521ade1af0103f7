"""The complaint service's arq worker: the SLA sweep every minute, and relaying its events."""

from __future__ import annotations

from arq.cron import cron

from services.complaint.jobs import sla_sweep
from services.kit.worker import JobFunction, worker_settings

FUNCTIONS: list[JobFunction] = [sla_sweep]

CRON_JOBS = [
    # On every worker at once is fine: the alert rows are unique, the clocks are taken
    # with SKIP LOCKED, so two sweeps share the work and never repeat an escalation.
    cron(sla_sweep, name="sla_sweep:minute", second=0, run_at_startup=True, keep_result=0),
]

WorkerSettings = worker_settings("complaint", FUNCTIONS, cron_jobs=CRON_JOBS)
