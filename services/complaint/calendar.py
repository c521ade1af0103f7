"""Business calendars and SLA time arithmetic: pure functions, no database, no "now".

A :class:`BusinessCalendar` is a time zone, the working hours of a working day, which
weekdays are working days, and per-date overrides: public holidays (days off) and the
adjusted working days of the Chinese schedule (調休, a weekend day that is worked). It is
loaded from the ``calendar`` / ``calendar_day`` / ``calendar_year`` tables; a year that
has no official schedule there falls back to the ``holidays`` library's statutory
holidays and is marked provisional, so an SLA never stops at a year boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_HOURS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(13, 30), time(18, 0)),
)
DEFAULT_WORKING_WEEKDAYS: frozenset[int] = frozenset(range(5))  # Monday..Friday
MAX_DAYS = 3660  # a target never needs more than ten years of calendar


@dataclass(frozen=True)
class YearSchedule:
    """One year's days off and weekend working days, and whether they are official."""

    year: int
    days_off: Mapping[date, str]
    workdays: frozenset[date]
    provisional: bool
    source: str


@lru_cache(maxsize=64)
def library_schedule(year: int) -> YearSchedule:
    """The ``holidays`` package's China schedule for ``year``. The package tracks the State
    Council's adjusted working days; a year it has none for (published late in the year
    before) gets the statutory holidays only and is provisional."""
    import holidays  # about 0.1 s: only when a year is first needed, not at every start

    found = holidays.country_holidays("CN", years=year, language="en_US")
    days_off = {d: str(n) for d, n in found.items() if d.year == year}
    workdays = frozenset(d for d in found.weekend_workdays if d.year == year)
    return YearSchedule(
        year=year,
        days_off=days_off,
        workdays=workdays,
        provisional=not workdays,
        source="holidays-library",
    )


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str = "Asia/Shanghai"
    hours: tuple[tuple[time, time], ...] = DEFAULT_HOURS
    working_weekdays: frozenset[int] = DEFAULT_WORKING_WEEKDAYS
    years: Mapping[int, YearSchedule] = field(default_factory=dict)
    """Years loaded from the database; any other year falls back to the library."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def schedule(self, year: int) -> YearSchedule:
        found = self.years.get(year)
        return found if found is not None else library_schedule(year)

    def is_provisional(self, year: int) -> bool:
        return self.schedule(year).provisional

    def is_working_day(self, day: date) -> bool:
        schedule = self.schedule(day.year)
        if day in schedule.workdays:
            return True
        if day in schedule.days_off:
            return False
        return day.weekday() in self.working_weekdays

    def periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of ``day`` as aware instants (empty on a day off)."""
        if not self.is_working_day(day):
            return []
        zone = self.zone
        return [
            (datetime.combine(day, start, zone), datetime.combine(day, end, zone))
            for start, end in self.hours
        ]


def _local_day(instant: datetime, calendar: BusinessCalendar) -> date:
    return instant.astimezone(calendar.zone).date()


def business_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Working time between two instants, in seconds (0 when ``end`` <= ``start``)."""
    if end <= start:
        return 0.0
    total = 0.0
    day = _local_day(start, calendar)
    last = _local_day(end, calendar)
    while day <= last:
        for p_start, p_end in calendar.periods(day):
            lo, hi = max(p_start, start), min(p_end, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def add_business_seconds(calendar: BusinessCalendar, start: datetime, seconds: float) -> datetime:
    """The instant at which ``seconds`` of working time after ``start`` have passed."""
    remaining = max(0.0, seconds)
    day = _local_day(start, calendar)
    for _ in range(MAX_DAYS):
        for p_start, p_end in calendar.periods(day):
            lo = max(p_start, start)
            if p_end <= lo:
                continue
            available = (p_end - lo).total_seconds()
            if remaining <= available:
                return (lo + timedelta(seconds=remaining)).astimezone(UTC)
            remaining -= available
        day += timedelta(days=1)
    raise ValueError("target does not fit in ten years of this calendar")


def elapsed(calendar: BusinessCalendar, start: datetime, end: datetime, business: bool) -> float:
    if business:
        return business_seconds(calendar, start, end)
    return max(0.0, (end - start).total_seconds())


def advance(
    calendar: BusinessCalendar, start: datetime, seconds: float, business: bool
) -> datetime:
    if business:
        return add_business_seconds(calendar, start, seconds)
    return (start + timedelta(seconds=max(0.0, seconds))).astimezone(UTC)


Pause = tuple[datetime, datetime | None]


def due_time(
    start: datetime,
    calendar: BusinessCalendar,
    target_seconds: float,
    pauses: Sequence[Pause] = (),
    *,
    business: bool = True,
) -> datetime | None:
    """When a target of ``target_seconds`` (working or calendar time) started at ``start``
    falls due, the clock stopped during each pause. None while a pause is still open."""
    remaining = target_seconds
    cursor = start
    for pause_start, pause_end in sorted(pauses, key=lambda p: p[0]):
        if pause_start <= cursor:
            if pause_end is None:
                return None
            cursor = max(cursor, pause_end)
            continue
        used = elapsed(calendar, cursor, pause_start, business)
        if used >= remaining:
            return advance(calendar, cursor, remaining, business)
        remaining -= used
        if pause_end is None:
            return None
        cursor = pause_end
    return advance(calendar, cursor, remaining, business)


def provisional_years(calendar: BusinessCalendar, instants: Iterable[datetime]) -> list[int]:
    """The years among ``instants`` whose schedule is not yet official."""
    years = {_local_day(i, calendar).year for i in instants}
    return sorted(y for y in years if calendar.is_provisional(y))


def parse_hours(raw: Sequence[Sequence[str]]) -> tuple[tuple[time, time], ...]:
    """``[["08:30", "12:00"], ["13:30", "18:00"]]`` -> periods; raises ValueError."""
    periods: list[tuple[time, time]] = []
    for item in raw:
        if len(item) != 2:
            raise ValueError("each period is [start, end]")
        start, end = time.fromisoformat(item[0]), time.fromisoformat(item[1])
        if end <= start:
            raise ValueError(f"period {item[0]}-{item[1]} ends before it starts")
        if periods and start < periods[-1][1]:
            raise ValueError("periods must be in order and must not overlap")
        periods.append((start, end))
    if not periods:
        raise ValueError("a calendar needs at least one working period")
    return tuple(periods)
