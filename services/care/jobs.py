"""arq jobs of the care service. Each is safe to run twice (arq delivers at least once)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from services.care import automatic
from services.care.config import get_care_settings
from services.care.dispatch import DISPATCH_JOB, Dispatcher, build_provider
from services.kit import clock
from services.kit.worker import resources_of

logger = logging.getLogger("keepwell.care.jobs")


def dispatcher_of(ctx: dict[str, Any]) -> Dispatcher:
    """One dispatcher (and provider client) per worker process."""
    found: Dispatcher | None = ctx.get("care_dispatcher")
    if found is None:
        res = resources_of(ctx)
        care = get_care_settings()
        found = Dispatcher(res.session, res.redis, build_provider(care, res.http), care)
        ctx["care_dispatcher"] = found
    return found


async def dispatch_campaign(ctx: dict[str, Any], campaign_id: str) -> str:
    """Send a campaign's due recipients for a while; other copies of this job share the
    work through row claims (up to ``dispatch_concurrency`` of them), and a long campaign
    hands over to a fresh job."""
    dispatcher = dispatcher_of(ctx)
    outcome = await dispatcher.run(uuid.UUID(campaign_id), get_care_settings().job_seconds)
    if outcome == "handover":
        await resources_of(ctx).redis.enqueue_job(DISPATCH_JOB, campaign_id)
    return outcome


async def redrive_dispatch(ctx: dict[str, Any]) -> dict[str, Any]:
    """Start due campaigns, settle sends whose worker vanished, wake stalled campaigns."""
    return await dispatcher_of(ctx).redrive()


async def plan_daily_care(ctx: dict[str, Any]) -> dict[str, Any]:
    """Turn today's automatic-care rules into campaigns (hourly; idempotent per day)."""
    day = clock.today()
    async with resources_of(ctx).session() as session:
        result = await automatic.plan_day(session, day, get_care_settings())
    logger.info("planned automatic care for %s: %s", day, result.model_dump())
    return result.model_dump(mode="json")
