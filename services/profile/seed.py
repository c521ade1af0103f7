"""Demo data for the profile service: teams, managers and customers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg

from keepwell.demo import Customer, DemoData
from services.kit import clock
from services.kit.bulk import copy_rows
from services.profile import bulk_sql
from services.profile.models import SCHEMA

CUSTOMER_COLUMNS = (
    "msisdn", "name", "gender", "birthday", "region", "city", "time_zone", "join_date",
    "plan_name", "plan_fee", "contract_end", "balance", "status", "tier", "service_level",
    "lifecycle", "manager_id", "interests", "tags", "preferences", "taboos", "important_dates",
    "sms_opt_out", "sms_opt_out_at", "preferred_hours_start", "preferred_hours_end",
    "contact_channels", "do_not_disturb", "custom", "version", "created_at", "updated_at",
)  # fmt: skip


def _customer_row(c: Customer, now: datetime) -> tuple[Any, ...]:
    start, end = c.preferred_contact_hours
    dates = [{"label": label, "date": d.isoformat()} for label, d in c.important_dates]
    return (
        c.msisdn, c.name, c.gender, c.birthday, c.region, c.city, c.time_zone, c.join_date,
        c.plan_name, c.plan_fee, c.contract_end, c.balance, "active", c.tier, c.service_level,
        c.lifecycle, c.manager_id, json.dumps(list(c.interests), ensure_ascii=False),
        json.dumps(list(c.tags), ensure_ascii=False),
        json.dumps(list(c.preferences), ensure_ascii=False),
        json.dumps(list(c.taboos), ensure_ascii=False), json.dumps(dates, ensure_ascii=False),
        c.sms_opt_out, now if c.sms_opt_out else None, start, end,
        '["call", "sms"]' if c.service_level == "A" else '["sms"]', False, "{}", 1, now, now,
    )  # fmt: skip


def _customer_rows(data: DemoData) -> Iterator[tuple[Any, ...]]:
    now = clock.now()
    for customer in data.customers():
        yield _customer_row(customer, now)


async def is_empty(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.customer)")


async def load_demo(conn: asyncpg.Connection, data: DemoData) -> dict[str, int]:
    now = clock.now()
    teams = await copy_rows(
        conn,
        SCHEMA,
        "team",
        ("id", "name", "region", "supervisor_name", "created_at"),
        ((t.id, t.name, t.region, t.supervisor_name, now) for t in data.teams),
    )
    managers = await copy_rows(
        conn,
        SCHEMA,
        "manager",
        ("id", "name", "phone", "team_id", "active", "created_at"),
        ((m.id, m.name, m.phone, m.team_id, True, now) for m in data.managers),
    )
    customers = await copy_rows(conn, SCHEMA, "customer", CUSTOMER_COLUMNS, _customer_rows(data))
    # The archive keeps who managed each customer since when.
    await conn.execute(
        f"INSERT INTO {SCHEMA}.manager_assignment "
        "(customer_id, manager_id, started_at, assigned_by, reason) "
        f"SELECT id, manager_id, created_at, 'seed', '演示数据' FROM {SCHEMA}.customer "
        "WHERE manager_id IS NOT NULL"
    )
    await bulk_sql.announce_all_created(conn, actor="seed")
    return {"teams": teams, "managers": managers, "customers": customers}
