"""SLA clocks: start, pause, resume, stop and rebase one metric's clock at an instant.

Pure functions over a :class:`~services.complaint.models.SlaClock` row, a
:class:`~services.complaint.calendar.BusinessCalendar` and ``now``: no queries. The clock
keeps settled totals (``used_seconds``, ``paused_seconds``) and the start of its current
segment; every change first settles the segment under the rules in force until then, so a
policy or calendar change, a pause or a reopen never loses time already used or paused.

Every change that moves the due time starts a new due-time cycle (``cycle`` + 1, alert
level back to 0): warnings and escalations are written once per ticket, metric, level and
cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.complaint.calendar import BusinessCalendar, advance, elapsed, provisional_years
from services.complaint.models import ClockState, Metric, SlaClock, State

# Which step each metric's clock starts at and which step stops it.
STARTS_AT: dict[Metric, State] = {
    Metric.first_response: State.new,
    Metric.facts_clarified: State.acknowledged,
    Metric.solution_agreed: State.facts_clarified,
    Metric.tracking: State.solution_agreed,
    Metric.resolution: State.new,
}
STOPS_AT: dict[Metric, State] = {
    Metric.first_response: State.acknowledged,
    Metric.facts_clarified: State.facts_clarified,
    Metric.solution_agreed: State.solution_agreed,
    Metric.tracking: State.tracking,
    Metric.resolution: State.closed,
}

WARNING, BREACH, ESCALATION = 1, 2, 3


@dataclass
class NewClock:
    """A clock not yet stored: the same fields as the row, without ORM bookkeeping (opening
    a ticket builds several per request)."""

    metric: Metric
    state: ClockState
    policy_id: int | None
    calendar_id: int | None
    target_minutes: int
    business: bool
    started_at: datetime | None = None
    segment_start: datetime | None = None
    used_seconds: float = 0.0
    paused_since: datetime | None = None
    paused_seconds: float = 0.0
    stopped_at: datetime | None = None
    due_at: datetime | None = None
    cycle: int = 0
    alert_level: int = 0
    next_alert_at: datetime | None = None
    breached_at: datetime | None = None


Clock = SlaClock | NewClock
LEVEL_NAMES = {WARNING: "warning", BREACH: "breach", ESCALATION: "escalation"}


@dataclass(frozen=True)
class AlertTiming:
    lead: timedelta
    escalate_after: timedelta

    def next_alert(self, clock: Clock) -> datetime | None:
        if clock.state is not ClockState.running or clock.due_at is None:
            return None
        match clock.alert_level:
            case 0:
                return clock.due_at - self.lead
            case 1:
                return clock.due_at
            case 2:
                return clock.due_at + self.escalate_after
        return None


def target_seconds(clock: Clock) -> float:
    return clock.target_minutes * 60.0


def _new_cycle(clock: Clock, due: datetime | None, timing: AlertTiming) -> None:
    if due != clock.due_at:
        clock.cycle += 1
        clock.alert_level = 0
    clock.due_at = due
    clock.next_alert_at = timing.next_alert(clock)


def _settle(clock: Clock, calendar: BusinessCalendar, now: datetime) -> None:
    if clock.state is ClockState.running and clock.segment_start is not None:
        clock.used_seconds += elapsed(calendar, clock.segment_start, now, clock.business)
        clock.segment_start = now
    if clock.state is ClockState.paused and clock.paused_since is not None:
        clock.paused_seconds += max(0.0, (now - clock.paused_since).total_seconds())
        clock.paused_since = now


def _remaining_due(clock: Clock, calendar: BusinessCalendar, now: datetime) -> datetime:
    remaining = target_seconds(clock) - clock.used_seconds
    if remaining <= 0 and clock.due_at is not None and clock.due_at <= now:
        return clock.due_at  # already past due: the same breach, not a new one
    return advance(calendar, now, max(0.0, remaining), clock.business)


def start(clock: Clock, calendar: BusinessCalendar, now: datetime, timing: AlertTiming) -> None:
    """Start from zero (a step reached, or a step begun again after a reopen)."""
    clock.state = ClockState.running
    clock.started_at = now
    clock.segment_start = now
    clock.used_seconds = 0.0
    clock.paused_seconds = 0.0
    clock.paused_since = None
    clock.stopped_at = None
    clock.breached_at = None
    clock.due_at = None
    _new_cycle(clock, advance(calendar, now, target_seconds(clock), clock.business), timing)


def pause(clock: Clock, calendar: BusinessCalendar, now: datetime) -> None:
    if clock.state is not ClockState.running:
        return
    _settle(clock, calendar, now)
    clock.state = ClockState.paused
    clock.segment_start = None
    clock.paused_since = now
    clock.next_alert_at = None


def resume(clock: Clock, calendar: BusinessCalendar, now: datetime, timing: AlertTiming) -> None:
    """Go on after a pause, or after a stop (a reopened complaint's resolution clock)."""
    if clock.state is ClockState.paused:
        _settle(clock, calendar, now)
        clock.paused_since = None
    elif clock.state not in (ClockState.met, ClockState.breached):
        return
    clock.state = ClockState.running
    clock.segment_start = now
    clock.stopped_at = None
    _new_cycle(clock, _remaining_due(clock, calendar, now), timing)


def stop(clock: Clock, calendar: BusinessCalendar, now: datetime) -> None:
    if clock.state is ClockState.paused:
        _settle(clock, calendar, now)
        clock.paused_since = None
    elif clock.state is ClockState.running:
        _settle(clock, calendar, now)
    else:
        return
    late = clock.used_seconds > target_seconds(clock)
    clock.state = ClockState.breached if late else ClockState.met
    clock.segment_start = None
    clock.stopped_at = now
    clock.next_alert_at = None


def rebase(
    clock: Clock,
    old_calendar: BusinessCalendar,
    new_calendar: BusinessCalendar,
    now: datetime,
    timing: AlertTiming,
    *,
    target_minutes: int | None = None,
    business: bool | None = None,
    calendar_id: int | None = None,
    policy_id: int | None = None,
) -> None:
    """A policy or calendar change, from ``now`` on: time used so far is settled under the
    old rules and kept; the due time is recomputed under the new ones."""
    if clock.state in (ClockState.met, ClockState.breached):
        return
    _settle(clock, old_calendar, now)
    if target_minutes is not None:
        clock.target_minutes = target_minutes
    if business is not None:
        clock.business = business
    if calendar_id is not None:
        clock.calendar_id = calendar_id
    if policy_id is not None:
        clock.policy_id = policy_id
    if clock.state is ClockState.running:
        _new_cycle(clock, _remaining_due(clock, new_calendar, now), timing)


def view(clock: Clock, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
    """What the ticket shows for one metric, as of ``now``."""
    used = clock.used_seconds
    paused = clock.paused_seconds
    if clock.state is ClockState.running and clock.segment_start is not None:
        used += elapsed(calendar, clock.segment_start, now, clock.business)
    if clock.state is ClockState.paused and clock.paused_since is not None:
        paused += max(0.0, (now - clock.paused_since).total_seconds())
    state = clock.state.value
    if clock.state is ClockState.running and clock.due_at is not None and now > clock.due_at:
        state = ClockState.breached.value
    due = None if clock.state in (ClockState.paused, ClockState.waiting) else clock.due_at
    instants = [i for i in (clock.started_at, due) if i is not None]
    return {
        "metric": clock.metric.value,
        "target_minutes": clock.target_minutes,
        "business_hours": clock.business,
        "state": state,
        "started_at": clock.started_at,
        "due_at": due,
        "stopped_at": clock.stopped_at,
        "used_seconds": round(used, 1),
        "paused_seconds": round(paused, 1),
        "cycle": clock.cycle,
        "provisional_years": provisional_years(calendar, instants),
    }
