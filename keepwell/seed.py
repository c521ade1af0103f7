"""Demo data and first-start defaults; each service loads its own part into its own schema."""

from __future__ import annotations

from keepwell.demo import generate
from services.complaint import seed as complaint_seed
from services.kit.app import Resources
from services.kit.bulk import raw_connection
from services.kit.config import Settings
from services.profile import seed as profile_seed
from services.warning import seed as warning_seed


async def load_demo(settings: Settings, customers: int, seed: int = 7) -> dict[str, int]:
    """Load ``customers`` demo customers and 90 days of their usage in one transaction.
    Profile announces every customer with a ``customer.created`` event, so the other
    services' read models fill the way they do in production."""
    data = generate(customers=customers, seed=seed)
    async with raw_connection(settings.database_url) as conn, conn.transaction():
        counts = await profile_seed.load_demo(conn, data)
        counts |= await warning_seed.load_demo(conn, data.usage(days=90))
    counts["care_rules"] = await install_defaults(settings)
    # After profile's transaction: complaints go through the complaint service's own rules
    # (clocks, events), each in a transaction of its own.
    counts |= await complaint_seed.load_demo(
        settings,
        list(data.customers(0, min(len(complaint_seed.STORIES), data.customer_count))),
        {m.id: m.team_id for m in data.managers},
    )
    return counts


async def install_defaults(settings: Settings) -> int:
    """What a fresh installation starts with (the automatic-care rules; the complaint
    categories, business calendar and SLA policies); a no-op later."""
    from services.care.automatic import install_default_rules
    from services.complaint.service import install_defaults as install_complaint_defaults

    resources = Resources.open("care", settings)
    try:
        async with resources.session() as session:
            added = await install_default_rules(session)
    finally:
        await resources.close()
    complaint = Resources.open("complaint", settings)
    try:
        async with complaint.session() as session:
            await install_complaint_defaults(session)
    finally:
        await complaint.close()
    return added


async def prepare(settings: Settings, demo_customers: int) -> bool:
    """First start of a fresh system: defaults, and demo data when the archive is empty.
    Returns whether demo data was loaded."""
    async with raw_connection(settings.database_url) as conn:
        empty = await profile_seed.is_empty(conn)
    if empty:
        await load_demo(settings, demo_customers)
    else:
        await install_defaults(settings)
    return empty
