"""SLA clocks on real PostgreSQL, with explicit instants: pause and resume, a policy change
and a calendar change mid-ticket (no time lost), reopen, calendar time, a year boundary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from complaint_support import ADMIN, CUSTOMER, DIAMOND, MANAGER, snapshot

from services.complaint import service
from services.complaint.models import Metric, Ticket
from services.complaint.schemas import (
    Acknowledge,
    Agree,
    Clarify,
    Close,
    ComplaintCreate,
    PolicyIn,
    Track,
    Versioned,
    YearImport,
)
from services.kit.app import Resources
from services.kit.clock import BEIJING

HOUR = 3600.0


def bj(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BEIJING)


async def open_ticket(res: Resources, at: datetime, msisdn: str = DIAMOND, **fields: Any) -> Ticket:
    data = ComplaintCreate(
        msisdn=msisdn, channel="hotline", category="network_signal", description="信号差", **fields
    )
    async with res.session() as session:
        ticket = await service.create_ticket(session, MANAGER, data, now=at)
    return ticket


async def view(res: Resources, ticket_id: int, at: datetime) -> dict[str, dict[str, Any]]:
    async with res.session() as session:
        ticket = await service.get_ticket(session, ADMIN, ticket_id)
        found = await service.sla_view(session, ticket, now=at)
    return {m["metric"]: m | {"_sla": found} for m in found["metrics"]}


async def act(
    res: Resources, fn: Callable[..., Any], ticket_id: int, at: datetime, **body: Any
) -> Ticket:
    async with res.session() as session:
        current = await service.get_ticket(session, ADMIN, ticket_id)
        schema = {
            "acknowledge": Acknowledge,
            "clarify": Clarify,
            "agree": Agree,
            "track": Track,
            "close": Close,
        }.get(fn.__name__, Versioned)
        ticket: Ticket = await fn(
            session, MANAGER, ticket_id, schema(version=current.version, **body), now=at
        )
        return ticket


async def test_pause_and_resume_keep_the_time_used_and_move_the_due_time(world: Resources) -> None:
    # Diamond: first response 4 business hours. Tue 10:00 -> due 15:30.
    t = await open_ticket(world, bj(2026, 12, 1, 10))
    assert t.id is not None
    first = (await view(world, t.id, bj(2026, 12, 1, 10)))["first_response"]
    assert first["due_at"] == bj(2026, 12, 1, 15, 30)
    await act(world, service.wait_for_customer, t.id, bj(2026, 12, 1, 11))
    paused = (await view(world, t.id, bj(2026, 12, 2, 9)))["first_response"]
    assert paused["state"] == "paused" and paused["used_seconds"] == HOUR
    assert paused["paused_seconds"] == 22 * HOUR
    await act(world, service.resume, t.id, bj(2026, 12, 2, 11))
    resumed = (await view(world, t.id, bj(2026, 12, 2, 11, 30)))["first_response"]
    # 3 business hours left from Wed 11:00: 11:00-12:00, 13:30-15:30.
    assert resumed["due_at"] == bj(2026, 12, 2, 15, 30)
    assert resumed["used_seconds"] == 1.5 * HOUR and resumed["paused_seconds"] == 24 * HOUR
    assert resumed["cycle"] == first["cycle"] + 1


async def test_a_policy_change_mid_ticket_keeps_the_time_used(world: Resources) -> None:
    t = await open_ticket(world, bj(2026, 12, 1, 10))
    assert t.id is not None
    async with world.session() as session:
        (diamond,) = [p for p in await service.repo.policies(session) if "diamond" in p.name]
        targets = dict(diamond.targets) | {"first_response": {"minutes": 120, "business": True}}
        change = PolicyIn(
            name=diamond.name,
            position=diamond.position,
            conditions=diamond.conditions,
            targets=targets,
            calendar_id=diamond.calendar_id,
        )
        assert diamond.id is not None
        _, rebased = await service.update_policy(
            session, diamond.id, change, now=bj(2026, 12, 1, 11)
        )
    assert rebased >= 1
    first = (await view(world, t.id, bj(2026, 12, 1, 11)))["first_response"]
    # 1 hour used under the old target is kept: 1 of the new 2 hours left -> 12:00.
    assert first["used_seconds"] == HOUR and first["target_minutes"] == 120
    assert first["due_at"] == bj(2026, 12, 1, 12)


async def test_a_calendar_change_mid_ticket_keeps_the_time_used_and_paused(
    world: Resources,
) -> None:
    # Fri 2026-12-04 17:00, 4 business hours -> 1h on Friday, 3h on Monday -> Mon 11:30.
    t = await open_ticket(world, bj(2026, 12, 4, 17))
    assert t.id is not None
    assert (await view(world, t.id, bj(2026, 12, 4, 17)))["first_response"]["due_at"] == bj(
        2026, 12, 7, 11, 30
    )
    await act(world, service.wait_for_customer, t.id, bj(2026, 12, 4, 17, 30))
    # While paused, the official schedule makes Saturday 12-05 a working day.
    async with world.session() as session:
        calendar_id = (await service.repo.calendar_rows(session))[0].id
        assert calendar_id is not None
        rebased = await service.import_year(
            session,
            ADMIN,
            calendar_id,
            2026,
            YearImport(days_off=[date(2026, 10, 1)], workdays=[date(2026, 12, 5)]),
            now=bj(2026, 12, 4, 17, 40),
        )
    assert rebased >= 1
    await act(world, service.resume, t.id, bj(2026, 12, 4, 17, 45))
    first = (await view(world, t.id, bj(2026, 12, 4, 17, 45)))["first_response"]
    assert first["used_seconds"] == 0.5 * HOUR
    assert first["paused_seconds"] == 15 * 60
    # 3.5h left from 17:45: 15 min on Friday, 3h15 on Saturday from 08:30 -> 11:45.
    assert first["due_at"] == bj(2026, 12, 5, 11, 45)


async def test_a_calendar_change_while_running_settles_under_the_old_hours(
    world: Resources,
) -> None:
    t = await open_ticket(world, bj(2026, 12, 1, 9))
    assert t.id is not None
    from services.complaint.schemas import CalendarUpdate

    async with world.session() as session:
        calendar_id = (await service.repo.calendar_rows(session))[0].id
        assert calendar_id is not None
        await service.update_calendar(
            session,
            calendar_id,
            CalendarUpdate(hours=[["09:00", "17:00"]]),
            now=bj(2026, 12, 1, 11),
        )
    first = (await view(world, t.id, bj(2026, 12, 1, 11)))["first_response"]
    # 2h used 09:00-11:00 (old hours); 2h left in the new 09:00-17:00 day -> 13:00.
    assert first["used_seconds"] == 2 * HOUR and first["due_at"] == bj(2026, 12, 1, 13)


async def test_reopen_resumes_the_resolution_clock_with_the_time_already_used(
    world: Resources,
) -> None:
    t = await open_ticket(world, bj(2026, 12, 1, 9))
    assert t.id is not None
    await act(world, service.acknowledge, t.id, bj(2026, 12, 1, 10), emotion="客户不满")
    await act(
        world, service.clarify, t.id, bj(2026, 12, 1, 11), findings="基站", responsibility="ours"
    )
    await act(
        world,
        service.agree,
        t.id,
        bj(2026, 12, 1, 14),
        agreed=["修复"],
        actions=[{"description": "修复", "owner": "ops", "due_on": "2026-12-03"}],
    )
    async with world.session() as session:
        (action,) = await service.repo.actions_of(session, t.id)
    await act(
        world,
        service.track,
        t.id,
        bj(2026, 12, 1, 15),
        actions=[{"action_id": action.id, "done": True}],
    )
    await act(world, service.close, t.id, bj(2026, 12, 1, 16), satisfaction=3)
    closed = (await view(world, t.id, bj(2026, 12, 2, 10)))["resolution"]
    assert closed["state"] == "met" and closed["used_seconds"] == 5.5 * HOUR
    reopened = await act(world, service.reopen, t.id, bj(2026, 12, 2, 10))
    assert reopened.state.value == "facts_clarified"
    resolution = (await view(world, t.id, bj(2026, 12, 2, 11)))["resolution"]
    assert resolution["state"] == "running" and resolution["used_seconds"] == 6.5 * HOUR
    # A reopen too late is refused.
    await act(
        world,
        service.agree,
        t.id,
        bj(2026, 12, 2, 11),
        agreed=["再修"],
        actions=[{"description": "更换设备", "owner": "ops", "due_on": "2026-12-04"}],
    )
    async with world.session() as session:
        actions = [a for a in await service.repo.actions_of(session, t.id) if not a.done]
    await act(
        world,
        service.track,
        t.id,
        bj(2026, 12, 2, 12),
        actions=[{"action_id": actions[0].id, "done": True}],
    )
    await act(world, service.close, t.id, bj(2026, 12, 2, 14), satisfaction=5)
    from services.complaint.exceptions import InvalidTransition

    with pytest.raises(InvalidTransition) as refused:
        await act(world, service.reopen, t.id, bj(2026, 12, 20, 10))
    assert "closed more than" in refused.value.message and refused.value.allowed == ["satisfaction"]


async def test_calendar_time_targets_count_nights_and_weekends(
    world: Resources, seed_customers: Any
) -> None:
    await seed_customers(snapshot("13600000001", tier="none", version=1))
    # Normal customers: first response 24 calendar hours (Fri 17:00 -> Sat 17:00).
    t = await open_ticket(world, bj(2026, 12, 4, 17), msisdn="13600000001")
    assert t.id is not None
    first = (await view(world, t.id, bj(2026, 12, 5, 9)))["first_response"]
    assert not first["business_hours"] and first["due_at"] == bj(2026, 12, 5, 17)
    assert first["used_seconds"] == 16 * HOUR


async def test_a_due_time_in_a_year_without_an_official_schedule_is_marked_provisional(
    world: Resources,
) -> None:
    t = await open_ticket(world, bj(2026, 12, 31, 17))
    assert t.id is not None
    metrics = await view(world, t.id, bj(2026, 12, 31, 17))
    first = metrics["first_response"]
    # 1h on 12-31, New Year's Day off, the weekend -> Monday 2027-01-04 11:30.
    assert first["due_at"] == bj(2027, 1, 4, 11, 30)
    assert first["provisional_years"] == [2027]
    assert first["_sla"]["provisional"] and "2027" in first["_sla"]["note"]


async def test_a_gold_customer_gets_the_vip_policy_and_a_steps_clock_starts_at_its_step(
    world: Resources,
) -> None:
    t = await open_ticket(world, bj(2026, 12, 1, 9), msisdn=CUSTOMER)
    assert t.id is not None
    await act(world, service.acknowledge, t.id, bj(2026, 12, 1, 10), emotion="理解客户")
    metrics = await view(world, t.id, bj(2026, 12, 1, 10))
    assert metrics[Metric.first_response.value]["used_seconds"] == HOUR
    facts = metrics[Metric.facts_clarified.value]
    assert facts["state"] == "running" and facts["started_at"] == bj(2026, 12, 1, 10)
    # 16 business hours from Tue 10:00 -> Thu 10:00.
    assert facts["due_at"] == bj(2026, 12, 3, 10) + timedelta(0)
