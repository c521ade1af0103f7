"""Demo data for the whole system; each service loads its own part into its own schema."""

from __future__ import annotations

from keepwell.demo import generate
from services.kit.bulk import raw_connection
from services.kit.config import Settings
from services.profile import seed as profile_seed
from services.warning import seed as warning_seed


async def load_demo(settings: Settings, customers: int, seed: int = 7) -> dict[str, int]:
    """Load ``customers`` demo customers and 90 days of their usage in one transaction."""
    data = generate(customers=customers, seed=seed)
    async with raw_connection(settings.database_url) as conn, conn.transaction():
        counts = await profile_seed.load_demo(conn, data)
        counts |= await warning_seed.load_demo(conn, data)
    return counts


async def seed_if_empty(settings: Settings, customers: int) -> bool:
    """First start of a fresh system: load demo data. Returns whether it did."""
    async with raw_connection(settings.database_url) as conn:
        if not await profile_seed.is_empty(conn):
            return False
    await load_demo(settings, customers)
    return True
