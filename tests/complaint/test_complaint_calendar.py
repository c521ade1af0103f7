"""Due times as a pure function of (start, calendar, target, pauses), with literal instants:
weekends, public holidays, adjusted working days (調休), the end of a year, business hours
and calendar time, and years with no official schedule yet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.complaint.calendar import (
    BusinessCalendar,
    YearSchedule,
    business_seconds,
    due_time,
    library_schedule,
    provisional_years,
)
from services.kit.clock import BEIJING

CAL = BusinessCalendar()  # 08:30-12:00, 13:30-18:00 Beijing, Mon-Fri, holidays library
HOUR = 3600.0


def bj(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BEIJING)


def test_within_one_working_day_skips_the_lunch_break() -> None:
    # Tuesday 2026-12-01 10:00 + 4 business hours: 2h until 12:00, 2h from 13:30 -> 15:30.
    assert due_time(bj(2026, 12, 1, 10), CAL, 4 * HOUR) == bj(2026, 12, 1, 15, 30)


def test_over_a_weekend() -> None:
    # Friday 2026-12-04 17:00 + 2h: 1h on Friday, 1h on Monday from 08:30 -> 09:30.
    assert due_time(bj(2026, 12, 4, 17), CAL, 2 * HOUR) == bj(2026, 12, 7, 9, 30)


def test_over_a_public_holiday() -> None:
    # National Day 2026: 10-01..10-07 off; Wednesday 09-30 17:00 + 2h. 2026-10-10 is an
    # adjusted working Saturday, so the second hour falls on Thursday 10-08 08:30-09:30.
    assert due_time(bj(2026, 9, 30, 17), CAL, 2 * HOUR) == bj(2026, 10, 8, 9, 30)


def test_an_adjusted_working_saturday_counts() -> None:
    # 2026-02-14 (Saturday) is a working day (調休); Friday 02-13 17:00 + 2h -> Sat 09:30.
    assert CAL.is_working_day(date(2026, 2, 14))
    assert due_time(bj(2026, 2, 13, 17), CAL, 2 * HOUR) == bj(2026, 2, 14, 9, 30)
    # 2026-02-28 too, after the Spring Festival break (02-15..02-23 off).
    assert CAL.is_working_day(date(2026, 2, 28))
    assert not CAL.is_working_day(date(2026, 2, 20))
    assert due_time(bj(2026, 2, 27, 17), CAL, 2 * HOUR) == bj(2026, 2, 28, 9, 30)


def test_across_the_end_of_the_year_into_a_provisional_year() -> None:
    # Thursday 2026-12-31 17:00 + 2h: 1h on 12-31; 2027-01-01 New Year's Day is off (the
    # library knows the statutory holiday), 01-02/03 the weekend -> Monday 2027-01-04 09:30.
    due = due_time(bj(2026, 12, 31, 17), CAL, 2 * HOUR)
    assert due == bj(2027, 1, 4, 9, 30)
    assert due is not None
    assert provisional_years(CAL, [bj(2026, 12, 31, 17), due]) == [2027]
    assert library_schedule(2027).provisional and not library_schedule(2026).provisional


def test_spring_festival_2027_from_statutory_holidays_only() -> None:
    # 2027-02-05 (the eve) .. 02-10 are days off in the library (no adjusted days known):
    # Thursday 02-04 17:00 + 2h -> Thursday 02-11 09:30. Provisional, but never a crash.
    assert due_time(bj(2027, 2, 4, 17), CAL, 2 * HOUR) == bj(2027, 2, 11, 9, 30)


def test_an_imported_official_schedule_replaces_the_fallback() -> None:
    official = YearSchedule(
        year=2027,
        days_off={date(2027, 1, 1): "元旦"},
        workdays=frozenset({date(2027, 1, 2)}),
        provisional=False,
        source="official",
    )
    cal = BusinessCalendar(years={2027: official})
    assert due_time(bj(2026, 12, 31, 17), cal, 2 * HOUR) == bj(2027, 1, 2, 9, 30)
    assert provisional_years(cal, [bj(2027, 1, 2)]) == []


def test_calendar_time_counts_nights_weekends_and_holidays() -> None:
    start = bj(2026, 9, 30, 17)
    assert due_time(start, CAL, 24 * HOUR, business=False) == bj(2026, 10, 1, 17)


def test_pauses_stop_the_clock_in_business_time() -> None:
    # Tue 10:00, 4h target; paused 11:00-14:30 (of which 1h business before lunch and 1h
    # after): used 1h before the pause, 3h left from 14:30 -> 17:30.
    pauses = [(bj(2026, 12, 1, 11), bj(2026, 12, 1, 14, 30))]
    assert due_time(bj(2026, 12, 1, 10), CAL, 4 * HOUR, pauses) == bj(2026, 12, 1, 17, 30)


def test_pauses_stop_the_clock_in_calendar_time() -> None:
    pauses = [(bj(2026, 12, 1, 11), bj(2026, 12, 2, 11))]
    assert due_time(bj(2026, 12, 1, 10), CAL, 2 * HOUR, pauses, business=False) == bj(
        2026, 12, 2, 12
    )


def test_an_open_pause_has_no_due_time() -> None:
    assert due_time(bj(2026, 12, 1, 10), CAL, 4 * HOUR, [(bj(2026, 12, 1, 11), None)]) is None


def test_a_target_already_used_before_the_pause_is_due_then() -> None:
    pauses = [(bj(2026, 12, 1, 15), bj(2026, 12, 2, 10))]
    assert due_time(bj(2026, 12, 1, 10), CAL, HOUR, pauses) == bj(2026, 12, 1, 11)


def test_a_start_outside_working_hours_waits_for_the_next_period() -> None:
    # Saturday 2026-12-05 22:00 + 30 minutes -> Monday 09:00.
    assert due_time(bj(2026, 12, 5, 22), CAL, 1800) == bj(2026, 12, 7, 9)


def test_business_seconds_over_a_week() -> None:
    assert business_seconds(CAL, bj(2026, 11, 30), bj(2026, 12, 7)) == 5 * 8 * HOUR


@pytest.mark.parametrize("year", [2030, 2040])
def test_far_years_fall_back_without_crashing(year: int) -> None:
    due = due_time(datetime(year, 6, 1, 2, tzinfo=UTC), CAL, 40 * HOUR)
    assert due is not None and due > datetime(year, 6, 1, tzinfo=UTC)
    assert due - datetime(year, 6, 1, tzinfo=UTC) < timedelta(days=14)
