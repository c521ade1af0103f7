"""Jobs of the profile service (arq). Every job is safe to run twice."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from services.kit.bulk import raw_connection
from services.kit.worker import resources_of
from services.profile import erasure, service
from services.profile.tiers import recompute

logger = logging.getLogger("keepwell.profile.jobs")


async def recompute_tiers(ctx: dict[str, Any]) -> dict[str, Any]:
    """Monthly: RFM, tiers and value quadrants from the last 3 months of billing."""
    settings = resources_of(ctx).settings
    async with raw_connection(settings.database_url) as conn, conn.transaction():
        summary = await recompute(conn)
    logger.info("tier recompute: %s", summary.model_dump_json())
    return summary.model_dump(mode="json")


async def take_vip_snapshot(ctx: dict[str, Any], day: str | None = None) -> dict[str, Any]:
    """Monthly on the 1st: the snapshot (拍照) of the VIP base for ``day`` (ISO date; default
    today in Beijing). A day taken already is left as it is, so a rerun changes nothing."""
    target = date.fromisoformat(day) if day else None
    async with resources_of(ctx).session() as session:
        taken = await service.take_snapshot(session, target, "system:snapshot")
    logger.info("VIP snapshot: %s", taken.model_dump_json())
    return taken.model_dump(mode="json")


async def anonymise_old_contact_text(ctx: dict[str, Any]) -> int:
    """Nightly: contact-log notes older than PROFILE_CONTACT_TEXT_RETENTION_DAYS set to
    NULL, a batch per transaction until none is left; how many."""
    total = await resources_of(ctx).in_batches(
        erasure.anonymise_old_contact_text, erasure.RETENTION_BATCH
    )
    logger.info("contact-log notes past the retention anonymised: %d", total)
    return total
