"""Chinese public holidays, lunar festivals included, from the maintained ``holidays`` package.

No dates are written here: the lunar festivals move every year, and the State Council's
yearly arrangement (observed and substituted days) is tracked by that package.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import lru_cache

# Festival keys used in rules -> the package's English name for the festival's first day.
FESTIVALS: dict[str, str] = {
    "new_year": "New Year's Day",
    "spring_festival": "Chinese New Year (Spring Festival)",
    "tomb_sweeping": "Tomb-Sweeping Day",
    "labor_day": "Labor Day",
    "dragon_boat": "Dragon Boat Festival",
    "mid_autumn": "Mid-Autumn Festival",
    "national_day": "National Day",
}
FESTIVAL_NAMES_ZH: dict[str, str] = {
    "new_year": "元旦",
    "spring_festival": "春节",
    "tomb_sweeping": "清明",
    "labor_day": "五一",
    "dragon_boat": "端午",
    "mid_autumn": "中秋",
    "national_day": "国庆",
}


@lru_cache(maxsize=16)
def _calendar(year: int) -> dict[date, str]:
    import holidays  # about 0.1 s: only when planning, not when a care process starts

    found = holidays.country_holidays("CN", years=[year - 1, year, year + 1], language="en_US")
    return {day: str(name) for day, name in found.items()}


def festival_date(festival: str, year: int) -> date | None:
    """The first day of ``festival`` in ``year`` (e.g. Spring Festival 2026 -> 2026-02-17)."""
    name = FESTIVALS[festival]
    days = [d for d, n in _calendar(year).items() if d.year == year and name in n.split("; ")]
    return min(days) if days else None


_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


@lru_cache(maxsize=16)
def _makeup_workdays(year: int) -> frozenset[date]:
    """Weekends worked in exchange for a day off ("Day off (substituted from 02/14/2026)")."""
    found = set()
    for name in _calendar(year).values():
        for month, day, in_year in _SUBSTITUTED.findall(name):
            found.add(date(int(in_year), int(month), int(day)))
    return frozenset(found)


def is_day_off(day: date) -> bool:
    if day in _calendar(day.year):
        return True
    return day.weekday() >= 5 and day not in _makeup_workdays(day.year)


def long_holidays(year: int, min_days: int = 3) -> list[tuple[date, date]]:
    """Runs of consecutive days off (holidays and the weekends next to them) that include a
    public holiday and last at least ``min_days``: (first day, last day)."""
    calendar = _calendar(year)
    runs: list[tuple[date, date]] = []
    for day in sorted(d for d in calendar if d.year == year):
        if runs and runs[-1][0] <= day <= runs[-1][1]:
            continue
        start = day
        while is_day_off(start - timedelta(days=1)):
            start -= timedelta(days=1)
        end = day
        while is_day_off(end + timedelta(days=1)):
            end += timedelta(days=1)
        if (end - start).days + 1 >= min_days and (not runs or start > runs[-1][1]):
            runs.append((start, end))
    return runs
