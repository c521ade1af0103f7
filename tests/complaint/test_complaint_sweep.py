"""The SLA sweep: warn before a breach, escalate at breach and again later, exactly once
per ticket, metric, level and due-time cycle, even with two sweeps at once; and a real arq
worker running it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from arq.worker import Worker
from complaint_support import ADMIN, CUSTOMER, MANAGER, outbox, scalar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.complaint import repository as repo
from services.complaint import service
from services.complaint.jobs import sla_sweep
from services.complaint.models import Ticket
from services.complaint.schemas import ComplaintCreate, PolicyIn, Versioned
from services.complaint.worker import CRON_JOBS, FUNCTIONS
from services.kit import clock
from services.kit.app import Resources
from services.kit.config import Settings
from services.kit.redis import create_redis
from services.kit.worker import worker_settings

T0 = datetime(2026, 12, 1, 10, tzinfo=clock.BEIJING)


async def one_hour_policy(res: Resources) -> None:
    """First to match: first response within 60 calendar minutes (resolution far away)."""
    async with res.session() as session:
        await service.create_policy(
            session,
            PolicyIn(
                name="一小时响应",
                position=0,
                targets={
                    "first_response": {"minutes": 60, "business": False},
                    "resolution": {"minutes": 60 * 24 * 30, "business": False},
                },
            ),
        )
        await repo.upsert_escalation_contact(
            session,
            {
                "team_id": "t1",
                "supervisor_id": "sup-1",
                "escalation_manager_id": "boss-1",
                "updated_by": "admin",
            },
        )


async def open_tickets(res: Resources, n: int, at: datetime = T0) -> list[Ticket]:
    found = []
    async with res.session() as session:
        for i in range(n):
            data = ComplaintCreate(
                msisdn=CUSTOMER, channel="app", category="other", description=f"第{i}件"
            )
            ticket = await service.create_ticket(session, MANAGER, data, now=at)
            found.append(ticket)
    return found


async def sweep(res: Resources, at: datetime) -> dict[str, int]:
    totals = {"warnings": 0, "breaches": 0, "escalations": 0}
    while True:
        async with res.session() as session:
            result, more = await service.sweep(session, at, limit=7)
        for key in totals:
            totals[key] += getattr(result, key)
        if not more:
            return totals


async def alerts(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT ticket_id, metric, level, cycle, target_id"
                " FROM complaint.sla_alert ORDER BY id"
            )
        )
        return list(rows)


async def test_warning_then_breach_then_escalation_each_once_to_the_configured_people(
    world: Resources, engine: AsyncEngine
) -> None:
    await one_hour_policy(world)
    (ticket,) = await open_tickets(world, 1)
    assert await sweep(world, T0 + timedelta(minutes=40)) == {
        "warnings": 0,
        "breaches": 0,
        "escalations": 0,
    }
    assert await sweep(world, T0 + timedelta(minutes=46)) == {
        "warnings": 1,
        "breaches": 0,
        "escalations": 0,
    }
    assert await sweep(world, T0 + timedelta(minutes=50)) == {
        "warnings": 0,
        "breaches": 0,
        "escalations": 0,
    }
    assert await sweep(world, T0 + timedelta(minutes=61)) == {
        "warnings": 0,
        "breaches": 1,
        "escalations": 0,
    }
    assert await sweep(world, T0 + timedelta(minutes=90)) == {
        "warnings": 0,
        "breaches": 0,
        "escalations": 0,
    }
    assert await sweep(world, T0 + timedelta(minutes=121)) == {
        "warnings": 0,
        "breaches": 0,
        "escalations": 1,
    }
    assert await sweep(world, T0 + timedelta(days=2)) == {
        "warnings": 0,
        "breaches": 0,
        "escalations": 0,
    }
    assert [(a.metric, a.level, a.target_id) for a in await alerts(engine)] == [
        ("first_response", 1, "m1"),
        ("first_response", 2, "sup-1"),
        ("first_response", 3, "boss-1"),
    ]
    (breached,) = await outbox(engine, "complaint.sla_breached")
    assert breached.payload["metric"] == "first_response"
    escalated = await outbox(engine, "complaint.escalated")
    assert [(e.payload["level"], e.payload["escalated_to"]) for e in escalated] == [
        (1, "sup-1"),
        (2, "boss-1"),
    ]
    async with world.session() as session:
        found = await service.get_ticket(session, ADMIN, ticket.id or 0)
    assert found.breached


async def test_two_sweeps_at_once_escalate_each_ticket_exactly_once(
    world: Resources, engine: AsyncEngine, settings: Settings
) -> None:
    await one_hour_policy(world)
    tickets = await open_tickets(world, 40)
    other = Resources.open("complaint", settings)
    try:
        late = T0 + timedelta(hours=3)
        results = await asyncio.gather(sweep(world, late), sweep(other, late))
    finally:
        await other.close()
    assert sum(r["breaches"] for r in results) == 40
    assert sum(r["escalations"] for r in results) == 40
    assert sum(r["warnings"] for r in results) == 0  # already past due: no late warning
    written = await alerts(engine)
    assert len(written) == 80
    assert len({(a.ticket_id, a.metric, a.level, a.cycle) for a in written}) == 80
    assert len(await outbox(engine, "complaint.sla_breached")) == 40
    assert len(await outbox(engine, "complaint.escalated")) == 80
    again = await asyncio.gather(sweep(world, late), sweep(world, late + timedelta(hours=1)))
    assert all(r == {"warnings": 0, "breaches": 0, "escalations": 0} for r in again)
    assert len(tickets) == 40


async def test_a_pause_that_moves_the_due_time_starts_a_new_cycle(
    world: Resources, engine: AsyncEngine
) -> None:
    await one_hour_policy(world)
    (ticket,) = await open_tickets(world, 1)
    assert ticket.id is not None
    assert (await sweep(world, T0 + timedelta(minutes=50)))["warnings"] == 1
    async with world.session() as session:
        await service.wait_for_customer(
            session, MANAGER, ticket.id, Versioned(version=1), now=T0 + timedelta(minutes=50)
        )
    assert (await sweep(world, T0 + timedelta(hours=5)))["breaches"] == 0  # paused
    async with world.session() as session:
        await service.resume(
            session, MANAGER, ticket.id, Versioned(version=2), now=T0 + timedelta(hours=6)
        )
    # 10 minutes were left: due at 6h10; warned again in the new cycle, then breached.
    assert (await sweep(world, T0 + timedelta(hours=6, minutes=1)))["warnings"] == 1
    assert (await sweep(world, T0 + timedelta(hours=6, minutes=11)))["breaches"] == 1
    cycles = [(a.level, a.cycle) for a in await alerts(engine) if a.metric == "first_response"]
    assert cycles == [(1, 1), (1, 2), (2, 2)]


async def test_the_sweep_query_uses_the_due_time_index(
    world: Resources, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(
                    "EXPLAIN SELECT id FROM complaint.sla_clock WHERE next_alert_at <= now() "
                    "ORDER BY next_alert_at LIMIT 100"
                )
            )
        )
    assert "ix_sla_clock_next_alert_at" in plan


async def test_a_real_arq_worker_runs_the_sweep_on_its_schedule(
    world: Resources, engine: AsyncEngine, settings: Settings
) -> None:
    await one_hour_policy(world)
    # Opened three hours ago (real time): past due and past the further escalation.
    await open_tickets(world, 3, at=clock.now() - timedelta(hours=3))
    config = worker_settings(
        "complaint", FUNCTIONS, cron_jobs=CRON_JOBS, settings=settings, serve_metrics=False
    )
    redis = create_redis(settings.redis_url, "complaint")
    try:
        job = await redis.enqueue_job("sla_sweep", _queue_name=config.queue_name)  # type: ignore[attr-defined]
        assert job is not None
        worker = Worker(
            functions=config.functions,  # type: ignore[attr-defined]
            cron_jobs=config.cron_jobs,  # type: ignore[attr-defined]
            queue_name=config.queue_name,  # type: ignore[attr-defined]
            redis_pool=redis,
            on_startup=config.on_startup,  # type: ignore[attr-defined]
            on_shutdown=config.on_shutdown,  # type: ignore[attr-defined]
            burst=True,
            poll_delay=0.05,
        )
        await worker.main()
        await worker.close()
        result = await job.result(timeout=5)
    finally:
        await redis.aclose()
    written = await alerts(engine)
    assert len(written) == 6  # breach and escalation for each of the 3 tickets, once
    assert result["breaches"] + result["escalations"] <= 6
    assert (
        await scalar(
            engine, "SELECT count(*) FROM complaint.outbox WHERE type = 'complaint.escalated'"
        )
        == 6
    )
    assert sla_sweep.__name__ == "sla_sweep"
