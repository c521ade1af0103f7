"""Demo data for the warning service: daily usage for every demo customer."""

from __future__ import annotations

import asyncpg

from keepwell.demo import DemoData
from services.kit.bulk import copy_rows
from services.warning.models import SCHEMA

USAGE_COLUMNS = (
    "msisdn", "day", "outgoing_calls", "minutes", "data_mb", "spend", "balance",
    "competitor_hotline_calls", "forwarded_to_other_network", "other_network_call_share",
    "competitor_marketing_contacts",
)  # fmt: skip


async def load_demo(conn: asyncpg.Connection, data: DemoData, days: int = 90) -> dict[str, int]:
    rows = (
        (
            u.msisdn,
            u.day,
            u.outgoing_calls,
            u.minutes,
            u.data_mb,
            u.spend,
            u.balance,
            u.competitor_hotline_calls,
            u.forwarded_to_other_network,
            u.other_network_call_share,
            u.competitor_marketing_contacts,
        )
        for u in data.usage(days=days)
    )
    return {"usage_days": await copy_rows(conn, SCHEMA, "daily_usage", USAGE_COLUMNS, rows)}
