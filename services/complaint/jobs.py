"""arq jobs of the complaint service. Each is safe to run twice: the sweep writes each
warning and escalation once per ticket, metric, level and due-time cycle (a unique row in
the same transaction as its events), however many sweeps run at once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.complaint import erasure, service
from services.kit.worker import resources_of

logger = logging.getLogger("keepwell.complaint.jobs")

MAX_ROUNDS = 100


async def sla_sweep(ctx: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    """Warn before a breach, escalate at breach and again later: batches of due clocks, one
    transaction each, until none is due (``now``: an ISO instant, for tests and replays)."""
    at = datetime.fromisoformat(now) if now else None
    totals = {"warnings": 0, "breaches": 0, "escalations": 0, "rounds": 0}
    for _ in range(MAX_ROUNDS):
        async with resources_of(ctx).session() as session:
            result, more = await service.sweep(session, at)
        totals["warnings"] += result.warnings
        totals["breaches"] += result.breaches
        totals["escalations"] += result.escalations
        totals["rounds"] += 1
        if not more:
            break
    if totals["warnings"] or totals["breaches"] or totals["escalations"]:
        logger.info("SLA sweep: %s", totals)
    return totals


async def anonymise_old_texts(ctx: dict[str, Any]) -> int:
    """Nightly: the text of complaints closed longer ago than the retention anonymised, a
    batch per transaction until none is left; how many tickets."""
    total = await resources_of(ctx).in_batches(erasure.anonymise_old_texts, erasure.RETENTION_BATCH)
    logger.info("complaint texts past the retention anonymised: %d tickets", total)
    return total
