"""Jobs of the profile service (arq). Every job is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from services.kit.bulk import raw_connection
from services.kit.worker import resources_of
from services.profile.tiers import recompute

logger = logging.getLogger("keepwell.profile.jobs")


async def recompute_tiers(ctx: dict[str, Any]) -> dict[str, Any]:
    """Monthly: RFM, tiers and value quadrants from the last 3 months of billing."""
    settings = resources_of(ctx).settings
    async with raw_connection(settings.database_url) as conn, conn.transaction():
        summary = await recompute(conn)
    logger.info("tier recompute: %s", summary.model_dump_json())
    return summary.model_dump(mode="json")
