"""The care service's customer copy can be rebuilt from the profile service's API."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keepwell.demo import generate
from services.care.ops import rebuild_read_model
from services.kit.bulk import raw_connection
from services.kit.config import Settings
from services.kit.testing import serve
from services.profile import seed as profile_seed
from services.profile.app import create_app as create_profile_app


async def test_rebuild_copies_every_customer_from_profile_and_keeps_newer_ones(
    settings: Settings, engine: AsyncEngine
) -> None:
    data = generate(customers=7, seed=3)
    async with raw_connection(settings.database_url) as conn:
        await profile_seed.load_demo(conn, data)
    async with serve(create_profile_app(settings)) as url:
        first = await rebuild_read_model(settings, url)
        again = await rebuild_read_model(settings, url)
        async with engine.begin() as conn:
            # A copy kept before it had these columns: same versions, nothing in them.
            await conn.execute(
                text("UPDATE care.customer SET manager_name = NULL, interests = '[]'")
            )
        refilled = await rebuild_read_model(settings, url)
    assert first == {"fetched": 7, "applied": 7}
    assert again == {"fetched": 7, "applied": 0}  # nothing newer the second time
    assert refilled == {"fetched": 7, "applied": 7}
    managers = {m.id: m.name for m in data.managers}
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM care.customer"))).all()
    assert {r.msisdn: (r.tier, r.honorific, r.manager_name, r.tags, r.interests) for r in rows} == {
        c.msisdn: (c.tier, c.honorific, managers[c.manager_id], list(c.tags), list(c.interests))
        for c in data.customers()
    }
