"""Managers close their care tasks (each close is a contact in the customer's log and counts
toward reach); supervisors change and deactivate automatic-care rules."""

from __future__ import annotations

from datetime import date

from care_support import SeedCustomers, profile_envelope, snapshot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import automatic, repository
from services.care.app import create_app
from services.care.config import CareSettings
from services.care.consumers import CHURNED_TASK_NOTE, consumer
from services.kit.app import Resources
from services.profile.contract import ContactLogEntry, CustomerChurned


async def add_task(resources: Resources, msisdn: str, manager_id: str, period: str) -> int:
    async with resources.session() as session:
        await repository.add_task(
            session,
            msisdn=msisdn,
            manager_id=manager_id,
            kind="monthly_call",
            period=period,
            due_on=date(2026, 12, 31),
            note="月度电话回访",
        )
        task_id = await session.scalar(
            text("SELECT id FROM care.task WHERE msisdn = :m AND period = :p"),
            {"m": msisdn, "p": period},
        )
    assert task_id is not None
    return int(task_id)


async def test_a_manager_closes_their_task_and_the_call_goes_to_the_contact_log(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001", manager_id="m1"))
    task_id = await add_task(resources, "13800000001", "m1", "2026-12")

    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        before = (await client.get("/tasks")).json()
        response = await client.post(
            f"/tasks/{task_id}/complete",
            json={"outcome": "reached", "note": "客户对新套餐满意，约下月面谈"},
        )
        assert response.status_code == 200, response.text
        again = await client.post(f"/tasks/{task_id}/complete", json={"outcome": "reached"})
        still_open = (await client.get("/tasks")).json()
        done = (await client.get("/tasks", params={"status": "done"})).json()

    assert [t["id"] for t in before] == [task_id]
    closed = response.json()
    assert (closed["status"], closed["outcome"], closed["channel"], closed["completed_by"]) == (
        "done",
        "reached",
        "call",
        "m1",
    )
    assert again.status_code == 409 and again.json()["field"] == "status"
    assert still_open == []
    assert [t["id"] for t in done] == [task_id]

    async with engine.connect() as conn:
        event = (
            await conn.execute(
                text(
                    "SELECT o.type, o.payload, d.subscriber FROM care.outbox o "
                    "JOIN care.delivery d ON d.event_seq = o.seq"
                    " WHERE o.type = 'care.task_completed'"
                )
            )
        ).one()
    assert event.subscriber == "service:profile"
    contact = ContactLogEntry.model_validate(event.payload["contact"])
    assert (contact.msisdn, contact.channel, contact.outcome, contact.by) == (
        "13800000001",
        "call",
        "reached",
        "m1",
    )
    assert contact.source_ref == f"task:{task_id}"


async def test_a_manager_cannot_close_another_managers_task_and_bad_outcomes_are_refused(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    await seed_customers(snapshot("13800000001", manager_id="m1"))
    task_id = await add_task(resources, "13800000001", "m1", "2026-12")

    async with app_client(create_app(), role="manager", user="m2", team="t1") as client:
        theirs = await client.post(f"/tasks/{task_id}/complete", json={"outcome": "reached"})
        visible = (await client.get("/tasks", params={"manager_id": "m1"})).json()
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        bad = await client.post(f"/tasks/{task_id}/complete", json={"outcome": "happy"})
        missing = await client.post("/tasks/999999/complete", json={"outcome": "reached"})
        on_behalf = await client.post(
            f"/tasks/{task_id}/complete", json={"outcome": "no_answer", "channel": "visit"}
        )

    assert theirs.status_code == 403 and theirs.json()["code"] == "not_your_task"
    assert [t["id"] for t in visible] == [task_id]  # a colleague's task: read, not closed
    assert bad.status_code == 422 and bad.json()["field"] == "outcome"
    assert missing.status_code == 404 and missing.json()["field"] == "task_id"
    assert on_behalf.status_code == 200
    assert (on_behalf.json()["outcome"], on_behalf.json()["channel"]) == ("no_answer", "visit")
    async with engine.connect() as conn:
        completions = await conn.scalar(
            text("SELECT count(*) FROM care.outbox WHERE type = 'care.task_completed'")
        )
    assert completions == 1


async def test_a_deactivated_rule_plans_nothing_and_can_be_turned_back_on(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
) -> None:
    await seed_customers(snapshot("13800000001", birthday=date(1980, 12, 1)))
    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        created = await client.post(
            "/rules",
            json={"kind": "birthday", "name": "生日祝福", "template": "{name}{honorific}生日快乐"},
        )
        rule_id = created.json()["id"]
        off = await client.patch(f"/rules/{rule_id}", json={"active": False})
        listed = (await client.get("/rules")).json()
        everything = (await client.get("/rules", params={"include_inactive": "true"})).json()
        bad_template = await client.patch(f"/rules/{rule_id}", json={"template": "{name.upper}"})
        null_name = await client.patch(f"/rules/{rule_id}", json={"name": None})
        unknown = await client.patch(
            "/rules/00000000-0000-0000-0000-000000000000", json={"active": True}
        )
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        by_manager = await client.patch(f"/rules/{rule_id}", json={"active": True})

    assert off.status_code == 200 and off.json()["active"] is False
    assert listed == []
    assert [r["id"] for r in everything] == [rule_id]
    assert bad_template.status_code == 422 and bad_template.json()["field"] == "template"
    assert null_name.status_code == 422 and null_name.json()["field"] == "name"
    assert unknown.status_code == 404 and unknown.json()["field"] == "rule_id"
    assert by_manager.status_code == 403

    async with resources.session() as session:
        planned = await automatic.plan_day(session, date(2026, 12, 1), care_settings)
    assert planned.recipients_added == 0

    async with app_client(create_app(), role="supervisor", user="s1", team="t1") as client:
        on = await client.patch(
            f"/rules/{rule_id}", json={"active": True, "template": "{name}{honorific}，生日快乐！"}
        )
    assert on.status_code == 200
    async with resources.session() as session:
        planned = await automatic.plan_day(session, date(2026, 12, 1), care_settings)
    assert planned.recipients_added == 1


async def test_open_tasks_follow_the_customer_to_their_new_manager(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
) -> None:
    await seed_customers(snapshot("13800000001", manager_id="m1"))
    done = await add_task(resources, "13800000001", "m1", "2026-11")
    still_open = await add_task(resources, "13800000001", "m1", "2026-12")
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        closed = await client.post(f"/tasks/{done}/complete", json={"outcome": "reached"})
        assert closed.status_code == 200, closed.text

    await seed_customers(snapshot("13800000001", version=2, manager_id="m2"))

    async with app_client(create_app(), role="manager", user="m2", team="t1") as client:
        theirs = (await client.get("/tasks")).json()
    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        left = (await client.get("/tasks", params={"manager_id": "m1"})).json()
        history = (await client.get("/tasks", params={"status": "done"})).json()
    assert [t["id"] for t in theirs] == [still_open]
    assert left == []
    assert [(t["id"], t["completed_by"]) for t in history] == [(done, "m1")]


async def test_a_churned_customers_open_tasks_are_cancelled(
    app_client,
    resources: Resources,
    seed_customers: SeedCustomers,
    care_settings: CareSettings,
) -> None:
    await seed_customers(snapshot("13800000001", manager_id="m1"))
    task_id = await add_task(resources, "13800000001", "m1", "2026-12")
    churned = CustomerChurned(
        churned_on=date(2026, 11, 20),
        reason="携号转网",
        customer=snapshot("13800000001", version=2, status="churned", manager_id="m1"),
    )
    async with resources.session() as session:
        await consumer.receive(session, [profile_envelope(churned, seq=99)])

    async with app_client(create_app(), role="manager", user="m1", team="t1") as client:
        due = (await client.get("/tasks")).json()
        cancelled = (await client.get("/tasks", params={"status": "cancelled"})).json()
        closing = await client.post(f"/tasks/{task_id}/complete", json={"outcome": "reached"})
    assert due == []
    assert [(t["id"], t["outcome_note"]) for t in cancelled] == [(task_id, CHURNED_TASK_NOTE)]
    assert closing.status_code == 409 and "取消" in closing.json()["message"]
