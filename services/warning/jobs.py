"""arq jobs of the warning service. Each is safe to run twice (detection is idempotent)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.kit.worker import resources_of
from services.warning import service


async def detect_day(ctx: dict[str, Any], day: str | None = None) -> dict[str, Any]:
    """Run detection for ``day`` (ISO date), by default yesterday in the business time zone."""
    target = date.fromisoformat(day) if day else service.business_today() - timedelta(days=1)
    async with resources_of(ctx).session() as session:
        result = await service.run_detection(session, target)
    return result.model_dump(mode="json")


async def nightly_detection(ctx: dict[str, Any]) -> dict[str, Any]:
    return await detect_day(ctx)
