"""The complaint service's arq worker: the SLA sweep every minute, and relaying its events."""

from __future__ import annotations

from arq.cron import cron

from services.complaint.jobs import anonymise_old_texts, sla_sweep
from services.kit.worker import JobFunction, worker_settings

FUNCTIONS: list[JobFunction] = [sla_sweep, anonymise_old_texts]

CRON_JOBS = [
    # On every worker at once is fine: the alert rows are unique, the clocks are taken
    # with SKIP LOCKED, so two sweeps share the work and never repeat an escalation.
    cron(sla_sweep, name="sla_sweep:minute", second=0, run_at_startup=True, keep_result=0),
    # Daily, the retention of complaint texts; named with the service, since arq keys a cron
    # run "cron:{name}:{time}" across every queue.
    cron(anonymise_old_texts, name="anonymise_texts:complaint", hour=4, minute=40, unique=True),
]

WorkerSettings = worker_settings("complaint", FUNCTIONS, cron_jobs=CRON_JOBS)
