"""The operator's calendar: business dates are Beijing dates, whatever zone a server runs in.

Servers usually run on UTC, whose date lags Beijing's from 16:00 to 24:00 UTC; a date a
user enters or a rule counts from (a join date, "today's" birthdays) is a Beijing date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


def today() -> date:
    return datetime.now(BEIJING).date()


def now() -> datetime:
    """The current instant (aware, UTC): the one place "now" comes from, so tests and jobs
    can pass an explicit instant to the functions that take one instead."""
    return datetime.now(UTC)
