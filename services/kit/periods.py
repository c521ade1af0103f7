"""Report periods, read the same way by every service: ``from`` and ``to`` are Beijing
business dates, ``from`` the first day counted and ``to`` the day after the last (so
``from=2026-12-02&to=2026-12-03`` is the one day 2 December, 00:00 to 24:00 Beijing time).
"""

from __future__ import annotations

from datetime import date, datetime, time

from services.kit.clock import BEIJING
from services.kit.errors import InvalidInput

FROM_DESCRIPTION = "First day counted (a Beijing business date), included"
TO_DESCRIPTION = (
    "The day after the last day counted (a Beijing business date), excluded: "
    "from=2026-12-02&to=2026-12-03 is the single day 2026-12-02"
)


def check_period(period_from: date, period_to: date) -> None:
    """422 naming ``to`` unless the period holds at least one day."""
    if period_to <= period_from:
        raise InvalidInput("to 须晚于 from（to 是统计期最后一天的次日）", field="to")


def instants(period_from: date, period_to: date) -> tuple[datetime, datetime]:
    """The period as [start, end) instants: Beijing midnights."""
    check_period(period_from, period_to)
    return datetime.combine(period_from, time(), BEIJING), datetime.combine(
        period_to, time(), BEIJING
    )
