"""Fixtures of the profile tests: the app on the real database, a team with managers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from services.kit.testing import Infra
from services.profile.app import create_app

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def profile(app_client: Any) -> Client:
    """``async with profile(role="manager", user="M1", team="T1") as client``."""

    @asynccontextmanager
    async def open_client(role: str = "admin", **claims: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with app_client(create_app(), role=role, **claims) as client:
            yield client

    return open_client


@pytest.fixture
async def teams(infra: Infra, profile: Client) -> None:
    """Teams T1 (广州, supervisor S1: managers M1, M2) and T2 (乌鲁木齐: manager M3)."""
    async with profile() as client:
        for team in (
            {"id": "T1", "name": "广州天河VIP团队", "region": "广东", "supervisor_id": "S1",
             "supervisor_name": "周敏"},
            {"id": "T2", "name": "乌鲁木齐VIP团队", "region": "新疆", "supervisor_id": "S2",
             "supervisor_name": "马强"},
        ):  # fmt: skip
            assert (await client.post("/teams", json=team)).status_code == 201
        for manager in (
            {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"},
            {"id": "M2", "name": "王磊", "phone": "13900000002", "team_id": "T1"},
            {"id": "M3", "name": "阿依", "phone": "13900000003", "team_id": "T2"},
        ):
            assert (await client.post("/managers", json=manager)).status_code == 201


def customer(msisdn: str = "13812345678", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "msisdn": msisdn,
        "name": "王建国",
        "gender": "male",
        "birthday": "1975-05-20",
        "region": "广东",
        "city": "广州",
        "join_date": "2012-03-01",
        "plan_name": "全球通尊享199",
        "plan_fee": "199.00",
        "balance": "86.50",
        "tier": "gold",
        "service_level": "A",
        "lifecycle": "maturity",
        "manager_id": "M1",
    }
    body.update(fields)
    return body
