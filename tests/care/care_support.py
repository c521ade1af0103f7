"""Helpers shared by the care tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.auth import Principal, Role
from services.kit.events import Envelope
from services.profile.contract import (
    CustomerChurned,
    CustomerCreated,
    CustomerSnapshot,
    CustomerUpdated,
    ManagerReassigned,
    TierChanged,
)
from tests.snapshots import customer_snapshot

CustomerEvent = (
    CustomerCreated | CustomerUpdated | TierChanged | ManagerReassigned | CustomerChurned
)

SUPERVISOR = Principal(user_id="sup-1", role=Role.supervisor, team_id="t1")
OPERATOR = Principal(user_id="op-1", role=Role.operator)
"""Creates the campaigns the dispatch tests send: company-wide, so every customer is in."""
SeedCustomers = Callable[..., Any]
TOMORROW = datetime.combine(
    datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
)
"""Midnight UTC tomorrow: tests set the dispatcher's clock relative to it."""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


def snapshot(msisdn: str, **overrides: Any) -> CustomerSnapshot:
    return customer_snapshot(msisdn, **overrides)


def profile_envelope(event: CustomerEvent, seq: int = 1) -> Envelope:
    """``event`` as profile's relay delivers it to care's ``/events``."""
    return Envelope(
        id=uuid.uuid4(),
        seq=seq,
        type=event.event_type,
        version=1,
        producer="profile",
        aggregate_id=event.customer.msisdn,
        occurred_at=datetime.now(UTC),
        payload=event.model_dump(mode="json"),
    )


def numbers(count: int, start: int = 13800000000) -> list[str]:
    return [str(start + i) for i in range(count)]


async def recipients(engine: AsyncEngine, campaign_id: uuid.UUID) -> dict[str, Any]:
    """msisdn -> recipient row (every column) of a campaign."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM care.recipient WHERE campaign_id = :c"), {"c": campaign_id}
        )
        return {r.msisdn: r for r in rows}


async def states(engine: AsyncEngine, campaign_id: uuid.UUID) -> dict[str, str]:
    """msisdn -> state of every recipient of a campaign."""
    return {m: r.state for m, r in (await recipients(engine, campaign_id)).items()}


async def campaign_status(engine: AsyncEngine, campaign_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        status = await conn.scalar(
            text("SELECT status FROM care.campaign WHERE id = :c"), {"c": campaign_id}
        )
    return str(status)


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Until ``condition`` holds, checked every 50 ms; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def sent_phones(sandbox: httpx.AsyncClient) -> list[str]:
    response = await sandbox.get("/messages", params={"limit": 100000})
    return [m["phone"] for m in response.json()]
