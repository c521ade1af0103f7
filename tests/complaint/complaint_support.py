"""Helpers shared by the complaint tests (fixtures are in conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.auth import Principal, Role
from services.kit.events import Envelope
from services.profile.contract import CustomerCreated, CustomerSnapshot
from tests.snapshots import customer_snapshot

Api = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
"""``async with api(role=...) as client``: the complaint app, authenticated as that role."""

MANAGER = Principal(user_id="m1", role=Role.manager, team_id="t1")
OTHER_MANAGER = Principal(user_id="m2", role=Role.manager, team_id="t1")
SUPERVISOR = Principal(user_id="sup-1", role=Role.supervisor, team_id="t1")
OTHER_SUPERVISOR = Principal(user_id="sup-2", role=Role.supervisor, team_id="t2")
ADMIN = Principal(user_id="admin-1", role=Role.admin)
OPERATOR = Principal(user_id="op-1", role=Role.operator)

CUSTOMER = "13800000001"
DIAMOND = "13800000002"
OTHER_TEAM = "13900000009"


def snapshot(msisdn: str, **overrides: Any) -> CustomerSnapshot:
    return customer_snapshot(msisdn, **{"honorific": "先生", **overrides})


STANDARD = [
    snapshot(CUSTOMER),
    snapshot(DIAMOND, tier="diamond", name="王芳", gender="female", honorific="女士"),
    snapshot(OTHER_TEAM, manager_id="m9", team_id="t2"),
]


def profile_envelope(event: CustomerCreated, seq: int = 1) -> Envelope:
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


def complaint_body(msisdn: str = CUSTOMER, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "msisdn": msisdn,
        "channel": "hotline",
        "category": "network_signal",
        "description": "家里信号很差，打电话经常断线，已经反映过两次了。",
        "needs": ["be_heard", "fix_now"],
    }
    body.update(overrides)
    return body


async def outbox(engine: AsyncEngine, type_: str | None = None) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT type, aggregate_id, payload FROM complaint.outbox "
                "WHERE CAST(:t AS text) IS NULL OR type = :t ORDER BY seq"
            ),
            {"t": type_},
        )
        return list(rows)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()
