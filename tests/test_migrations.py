"""Every service's migrations are reversible and match its models exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

import migrations
from migrations.env_support import include_name_for, include_object_for
from services.kit.config import SCHEMAS
from services.kit.db import create_engine, libpq_url, metadata
from services.kit.testing import Infra, create_scratch_database, drop_database


@pytest.fixture
def empty_database(infra: Infra) -> Iterator[str]:
    url = asyncio.run(create_scratch_database(infra.database_url, "kw_migrate"))
    yield url
    asyncio.run(drop_database(url))


async def tables_of(url: str) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || tablename AS t FROM pg_tables "
            "WHERE schemaname = ANY($1::text[])",
            list(SCHEMAS),
        )
    finally:
        await conn.close()
    return {r["t"] for r in rows}


async def differences(url: str) -> dict[str, list[object]]:
    engine = create_engine(url, pool_size=1)

    def compare(conn: Connection) -> dict[str, list[object]]:
        found: dict[str, list[object]] = {}
        for service in SCHEMAS:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "include_name": include_name_for(service),
                    "include_object": include_object_for(service),
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            found[service] = compare_metadata(context, metadata)
        return found

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


def test_upgrade_downgrade_upgrade_leaves_no_difference_to_the_models(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    created = asyncio.run(tables_of(empty_database))
    assert {"profile.customer", "profile.manager", "profile.team", "warning.daily_usage"} <= created

    migrations.downgrade(empty_database)
    assert asyncio.run(tables_of(empty_database)) == {f"{s}.alembic_version" for s in SCHEMAS}

    migrations.upgrade(empty_database)
    assert asyncio.run(tables_of(empty_database)) == created
    assert asyncio.run(differences(empty_database)) == {s: [] for s in SCHEMAS}


def test_each_service_migrates_on_its_own(empty_database: str) -> None:
    migrations.upgrade(empty_database, ("warning",))
    tables = asyncio.run(tables_of(empty_database))
    assert {"warning.alembic_version", "warning.daily_usage", "warning.outbox"} <= tables
    assert {t.split(".")[0] for t in tables} == {"warning"}


def test_behind_names_the_schemas_not_at_head_so_a_restart_can_skip_the_upgrade(
    empty_database: str,
) -> None:
    assert migrations.behind(empty_database) == SCHEMAS
    migrations.upgrade(empty_database, ("profile", "care"))
    assert migrations.behind(empty_database) == ("warning", "complaint", "gateway")
    migrations.upgrade(empty_database)
    assert migrations.behind(empty_database) == ()
    migrations.downgrade(empty_database, ("care",), "-1")
    assert migrations.behind(empty_database) == ("care",)
