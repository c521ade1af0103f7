"""Demo data and first-start defaults; each service loads its own part into its own schema.

``load_demo`` loads the demo world (archive, usage, billing, complaints); ``play_demo``,
once the system runs, plays its first days through each service's own functions and jobs:
nightly detection over the past weeks, managers' follow-ups, the monthly tier recompute,
today's automatic care, a campaign in draft and a regional alert sent through the SMS
sandbox. Both are deterministic for a given seed and business date.
"""

from __future__ import annotations

import asyncio
import calendar
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from keepwell.demo import DEFAULT_SEED, generate
from services.complaint import seed as complaint_seed
from services.kit import clock
from services.kit.app import Resources
from services.kit.bulk import raw_connection
from services.kit.config import Settings
from services.profile import seed as profile_seed
from services.warning import seed as warning_seed

USAGE_DAYS = 120
"""Enough for the three complete months the tier recompute reads, whatever today is."""
READ_MODELS_TIMEOUT_SECONDS = 120.0
DETECTED_DAYS = 30
"""The past days the demo runs nightly detection over (drifting customers start to drift
14 to 28 days before today)."""


class _Billing:
    """Each customer's monthly spend, summed from the usage as it streams past: what the
    billing feed would deliver for the complete months before this one."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.spend: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        self.days: dict[date, set[date]] = defaultdict(set)

    def tap(self, usage: Iterable[Any]) -> Iterator[Any]:
        for u in usage:
            month = u.day.replace(day=1)
            self.spend[(u.msisdn, month)] += u.spend
            self.days[month].add(u.day)
            yield u

    def rows(self) -> Iterator[tuple[str, date, Decimal]]:
        this_month = self.today.replace(day=1)
        for (msisdn, month), spend in sorted(self.spend.items()):
            if month >= this_month:
                continue
            # The window's first month may be covered only in part: scale it to the month.
            length = calendar.monthrange(month.year, month.month)[1]
            yield msisdn, month, (spend * length / len(self.days[month])).quantize(Decimal("0.01"))


async def load_demo(settings: Settings, customers: int, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Load ``customers`` demo customers, 120 days of their usage and their billing in one
    transaction. Profile announces every customer with a ``customer.created`` event, so the
    other services' read models fill the way they do in production."""
    data = generate(customers=customers, seed=seed)
    billing = _Billing(data.today)
    async with raw_connection(settings.database_url) as conn, conn.transaction():
        counts = await profile_seed.load_demo(conn, data)
        counts |= await warning_seed.load_demo(conn, billing.tap(data.usage(days=USAGE_DAYS)))
        counts["billing_months"] = await profile_seed.load_billing(conn, billing.rows())
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


async def _read_models_filled(database_url: str) -> bool:
    async with raw_connection(database_url) as conn:
        found = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM profile.customer) AS profile, "
            "(SELECT count(*) FROM warning.customer) AS warning, "
            "(SELECT count(*) FROM care.customer) AS care"
        )
    return bool(found["profile"]) and found["profile"] == found["warning"] == found["care"]


async def wait_for_read_models(settings: Settings, stop: threading.Event) -> bool:
    """Until profile's customer events have reached warning's and care's copies (the
    workers relay them within seconds of starting)."""
    deadline = time.monotonic() + READ_MODELS_TIMEOUT_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        if await _read_models_filled(settings.database_url):
            return True
        await asyncio.sleep(0.25)
    return False


async def play_demo(settings: Settings, stop: threading.Event) -> dict[str, int]:
    """The demo's first days, played on the running system through each service's own
    functions (events and the workers do the rest): detection over the last
    ``DETECTED_DAYS`` days, follow-ups of some warnings, this month's tier recompute,
    today's automatic care, one campaign left in draft and one regional alert sent."""
    from services.care import seed as care_seed

    if not await wait_for_read_models(settings, stop):
        return {}
    today = clock.today()
    summary: dict[str, int] = {}
    warning = Resources.open("warning", settings)
    try:
        summary |= await warning_seed.detect_days(
            warning, today - timedelta(days=DETECTED_DAYS), today - timedelta(days=1)
        )
        summary |= await warning_seed.follow_up(warning)
    finally:
        await warning.close()
    summary |= await profile_seed.recompute_tiers(settings.database_url)
    care = Resources.open("care", settings)
    try:
        summary |= await care_seed.plan_today(care)
        await care_seed.draft_campaign(care)
        await care_seed.alert_campaign(care, await _busiest_region(settings))
    finally:
        await care.close()
    return summary


async def _busiest_region(settings: Settings) -> str:
    """The province with the most customers: the alert's region."""
    async with raw_connection(settings.database_url) as conn:
        region: str = await conn.fetchval(
            "SELECT region FROM profile.customer GROUP BY region ORDER BY count(*) DESC, region "
            "LIMIT 1"
        )
    return region
