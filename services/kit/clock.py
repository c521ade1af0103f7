"""The one clock: every "now" and every business date in Python code comes from here.

Business dates are Beijing dates, whatever zone a server runs in. Servers usually run on
UTC, whose date lags Beijing's from 16:00 to 24:00 UTC; a date a user enters or a rule
counts from (a join date, "today's" birthdays) is a Beijing date.

Tests that need another instant move the whole process tree (PostgreSQL's ``now()``
included) with libfaketime rather than patching this module; see the README. Code that
compares only instants it took from here (Idempotency-Key expiry) is tested by setting
``clock.now`` for the test (``monkeypatch.setattr(clock, "now", ...)``): call it as
``clock.now()``, not a name imported from this module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return datetime.now(UTC)


def today(zone: ZoneInfo = BEIJING) -> date:
    """Today's business date (Beijing unless another zone is asked for)."""
    return now().astimezone(zone).date()
