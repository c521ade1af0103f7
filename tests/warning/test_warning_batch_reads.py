"""The batched reads the gateway's loaders make: warnings and risk of several numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from warning_support import DAY, World

from services.warning.app import create_app

M1 = "13800138001"  # M0001's customer, team T001
M2 = "13800138002"  # M0002's customer, team T001
M3 = "13800138003"  # M0003's customer, team T002
QUIET = "13800138004"  # M0001's customer without warnings
ALL = [("msisdn", n) for n in (M3, "+86 138-0013-8001", M2, QUIET, "13899999999")]


async def _warnings(world: World) -> None:
    soon = {"contract_end": DAY + timedelta(days=10)}
    await world.customer(M1, manager_id="M0001", team_id="T001", **soon)
    await world.customer(M2, manager_id="M0002", team_id="T001", **soon)
    await world.customer(M3, manager_id="M0003", team_id="T002", **soon)
    await world.customer(QUIET, manager_id="M0001", team_id="T001")
    await world.detect()


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_warnings_of_several_numbers_with_the_other_filters_and_the_scope(
    world: World, app_client: Callable[..., Any]
) -> None:
    await _warnings(world)
    async with app_client(create_app(), role="operator", user="ops") as client:
        found = (await client.get("/warnings", params=ALL)).json()
        assert {w["msisdn"] for w in found} == {M1, M2, M3}
        narrowed = await client.get(
            "/warnings", params=[*ALL, ("signal", "contract_expiry"), ("status", "open")]
        )
        assert {w["msisdn"] for w in narrowed.json()} == {M1, M2, M3}
        resolved = await client.get("/warnings", params=[*ALL, ("status", "resolved")])
        assert resolved.json() == []
        one = await client.get("/warnings", params={"msisdn": M2})
        assert [w["msisdn"] for w in one.json()] == [M2]
    async with app_client(create_app(), role="supervisor", user="S1", team="T001") as client:
        assert {w["msisdn"] for w in (await client.get("/warnings", params=ALL)).json()} == {
            M1,
            M2,
        }
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        assert {w["msisdn"] for w in (await client.get("/warnings", params=ALL)).json()} == {
            M1,
            M2,
        }
        mine = await client.get("/warnings", params=[*ALL, ("manager_id", "M0001")])
        assert {w["msisdn"] for w in mine.json()} == {M1}


async def test_risk_of_several_numbers_is_the_single_read_for_each_visible_one(
    world: World, app_client: Callable[..., Any]
) -> None:
    await _warnings(world)
    async with app_client(create_app(), role="operator", user="ops") as client:
        risks = (await client.get("/risk", params=ALL)).json()
        assert [r["msisdn"] for r in risks] == [M3, M1, M2, QUIET]
        for risk in risks:
            single = await client.get(f"/subscribers/{risk['msisdn']}/risk")
            assert single.json() == risk
        assert risks[-1]["score"] == 0 and risks[-1]["components"] == []
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        team = (await client.get("/risk", params=ALL)).json()
        # The single read does not find M3: another team's customer.
        assert [r["msisdn"] for r in team] == [M1, M2, QUIET]
        assert (await client.get(f"/subscribers/{M3}/risk")).status_code == 404
    async with app_client(create_app(), role="supervisor", user="S2", team="T002") as client:
        # Nor T001's customers, with or without warnings.
        assert [r["msisdn"] for r in (await client.get("/risk", params=ALL)).json()] == [M3]
        assert (await client.get(f"/subscribers/{QUIET}/risk")).status_code == 404
    async with app_client(create_app(), role="partner", user="p") as client:
        assert (await client.get("/risk", params=ALL)).status_code == 403  # no warnings:read
    async with app_client(create_app(), role="partner", user="p", scopes=["warnings:read"]) as c:
        by_number = (await c.get("/risk", params=ALL)).json()
        assert by_number and all("****" in r["msisdn"] for r in by_number)


async def test_risk_of_many_numbers_costs_as_many_queries_as_of_one(
    world: World, app_client: Callable[..., Any]
) -> None:
    await _warnings(world)
    async with app_client(create_app(), role="operator", user="ops") as client:
        await client.get("/risk", params={"msisdn": M1})  # warm up
        with counting_statements() as one:
            await client.get("/risk", params={"msisdn": M1})
        with counting_statements() as four:
            await client.get("/risk", params=ALL)
    assert len(four) == len(one) <= 6


async def test_more_than_a_hundred_numbers_or_none_is_refused_naming_the_field(
    world: World, app_client: Callable[..., Any]
) -> None:
    numbers = [("msisdn", f"1380000{i:04d}") for i in range(101)]
    async with app_client(create_app(), role="operator", user="ops") as client:
        for path in ("/warnings", "/risk"):
            assert (await client.get(path, params=numbers[:100])).status_code == 200
            refused = await client.get(path, params=numbers)
            assert refused.status_code == 422 and refused.json()["field"] == "msisdn"
        missing = await client.get("/risk")
        assert missing.status_code == 422 and missing.json()["field"] == "msisdn"
