"""The monthly value recompute: RFM scores, tier and value quadrant from billing.

Runs for a month (``as_of``, its first day) over the 3 complete months before it. Safe to
run twice: a second run finds nothing to change. It refuses to run (and says why) when
the billing of the last month of the window has not been loaded, rather than demoting
every customer to "none" for want of data.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from services.kit.clock import today
from services.profile import bulk_sql
from services.profile.config import get_profile_settings
from services.profile.schemas import RecomputeSummary


def month_start(day: date) -> date:
    return day.replace(day=1)


def months_before(as_of: date, count: int) -> list[date]:
    """The ``count`` month starts before ``as_of``, oldest first."""
    out = []
    year, month = as_of.year, as_of.month
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(date(year, month, 1))
    return out[::-1]


async def recompute(conn: asyncpg.Connection, as_of: date | None = None) -> RecomputeSummary:
    as_of = month_start(as_of or today())
    window = months_before(as_of, 3)
    if not await bulk_sql.billing_exists(conn, window[-1]):
        return RecomputeSummary(
            as_of=as_of,
            window=window,
            evaluated=0,
            tier_changes=0,
            quadrant_changes=0,
            skipped_reason=f"no billing loaded for {window[-1]:%Y-%m}",
        )
    s = get_profile_settings()
    counts = await bulk_sql.recompute_values(
        conn,
        as_of=as_of,
        window=window,
        thresholds={
            "bounds": s.rfm_monetary_bounds,
            "min_active": s.tier_min_active_months,
            "diamond": s.tier_diamond_spend,
            "gold": s.tier_gold_spend,
            "silver": s.tier_silver_spend,
            "quadrant_spend": s.quadrant_value_spend,
            "growth": s.quadrant_growth,
        },
    )
    return RecomputeSummary(as_of=as_of, window=window, **counts)
