"""Demo data for the warning service: daily usage (and, for benchmarks, the customer copy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg

from keepwell.demo import Customer, DailyUsage, DemoData
from services.kit import clock
from services.kit.bulk import copy_rows
from services.warning.models import SCHEMA
from services.warning.repository import USAGE_COLUMNS


def customer_rows(data: DemoData, customers: Iterator[Customer]) -> Iterator[tuple[Any, ...]]:
    """What the profile events would have put in the read model (snapshot version 1)."""
    team_of = {m.id: m.team_id for m in data.managers}
    now = clock.now()
    for c in customers:
        yield (
            c.msisdn, 1, c.name, "active", c.tier, c.manager_id, team_of.get(c.manager_id),
            c.plan_name, c.plan_fee, c.contract_end, now,
        )  # fmt: skip


def usage_rows(usage: Iterator[DailyUsage]) -> Iterator[tuple[Any, ...]]:
    for u in usage:
        yield (
            u.msisdn, u.day, u.outgoing_calls, u.minutes, u.data_mb, u.spend, u.balance,
            u.competitor_hotline_calls, u.forwarded_to_other_network,
            u.other_network_call_share, u.competitor_marketing_contacts,
        )  # fmt: skip


async def load_demo(conn: asyncpg.Connection, data: DemoData, days: int = 90) -> dict[str, int]:
    """Usage only: the customer copy fills from profile's ``customer.created`` events, as
    in production. (``customer_rows`` loads it directly where no profile runs: benchmarks.)"""
    usage = await copy_rows(
        conn, SCHEMA, "daily_usage", USAGE_COLUMNS, usage_rows(data.usage(days=days))
    )
    return {"usage_days": usage}
