"""Fixtures shared by every test: real PostgreSQL and Redis, migrated once per session.

PostgreSQL and Redis are embedded (started for the session) unless TEST_DATABASE_URL /
TEST_REDIS_URL point at servers; either way each run migrates a scratch database of its
own. Tests are isolated by truncating every service's tables and flushing Redis after
each test, so code under test commits for real, as it does in production.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from services.kit import keys
from services.kit.auth import Principal, Role, Scope, issue_token
from services.kit.config import SCHEMAS, Settings, get_settings
from services.kit.db import create_engine, libpq_url
from services.kit.keys import Signer
from services.kit.testing import Infra, infrastructure


def session_keys() -> dict[str, str]:
    """A fresh key pair per signer for this test session, as the environment gives them."""
    env: dict[str, str] = {}
    for signer in Signer:
        private, public = keys.generate()
        env[f"KEEPWELL_{signer.value.upper()}_SIGNING_KEY"] = private
        env[f"KEEPWELL_{signer.value.upper()}_PUBLIC_KEY"] = public
    return env


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    # Not pytest's tmp_path: another pytest run on the machine may prune that directory
    # while this session's embedded servers still live in it.
    scratch = Path(tempfile.mkdtemp(prefix="keepwell-test-"))
    with infrastructure(
        scratch, os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    ) as found:
        keys = session_keys()
        saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL", "KEEPWELL_ENV", *keys)}
        os.environ.update(
            DATABASE_URL=found.database_url, REDIS_URL=found.redis_url, KEEPWELL_ENV="test", **keys
        )
        get_settings.cache_clear()
        migrations.upgrade(found.database_url)
        try:
            yield found
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            get_settings.cache_clear()
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(infra: Infra) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def engine(infra: Infra) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(infra.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def empty_everything(infra: Infra) -> None:
    conn = await asyncpg.connect(libpq_url(infra.database_url))
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
            "WHERE schemaname = ANY($1::text[]) AND tablename <> 'alembic_version'",
            list(SCHEMAS),
        )
        if tables:
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    client = Redis.from_url(infra.redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the database or Redis, leave both empty again. Synchronous on
    purpose: it runs between tests, outside the session's event loop."""
    yield
    if "infra" in request.fixturenames:
        asyncio.run(empty_everything(request.getfixturevalue("infra")))


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    def mint(
        role: str = "admin",
        user: str = "test-user",
        team: str | None = None,
        scopes: Iterable[str] = (),
    ) -> str:
        principal = Principal(
            user_id=user, role=Role(role), team_id=team, scopes=frozenset(map(Scope, scopes))
        )
        return issue_token(principal, settings)

    return mint


AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(infra: Infra, token: Callable[..., str]) -> AppClient:
    """``async with app_client(create_app(), role="manager") as client:`` calls the app in
    process (lifespan run), authenticated as that role unless ``role=None``."""

    @asynccontextmanager
    async def open_client(
        app: FastAPI, role: str | None = "admin", **claims: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"Authorization": f"Bearer {token(role, **claims)}"} if role else {}
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=headers
            ) as client:
                yield client

    return open_client
