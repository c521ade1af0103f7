"""What the care commands do beyond the API: rebuild the customer copy from profile."""

from __future__ import annotations

from services.care.consumers import upsert
from services.care.contract import PRODUCER
from services.kit.app import Resources
from services.kit.config import Settings
from services.profile.client import customer_snapshots


async def rebuild_read_model(settings: Settings, profile_url: str | None = None) -> dict[str, int]:
    """Reload the customer copy from the profile service's API; as with events, only a
    newer snapshot replaces what is held, or one of the same version that differs (after an
    upgrade that added columns to the copy). One transaction per page."""
    resources = Resources.open(PRODUCER, settings)
    fetched = applied = 0
    try:
        async for page in customer_snapshots(
            resources.http, settings, acting_as="system:care", profile_url=profile_url
        ):
            fetched += len(page)
            async with resources.session() as session:
                applied += await upsert(session, page, refill=True)
    finally:
        await resources.close()
    return {"fetched": fetched, "applied": applied}
