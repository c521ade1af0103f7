"""PostgreSQL or Redis going away: requests get 503 with a stable code, readiness names the
failing dependency, a worker waits for Redis, and once it is back the same process answers
and works again, no restart.

Each test stops servers of its own (never the session's, which other tests use)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from arq.worker import get_kwargs
from asgi_lifespan import LifespanManager

import migrations
from services.kit.config import Settings
from services.kit.embedded import EmbeddedPostgres, EmbeddedRedis
from services.kit.redis import create_redis
from services.kit.testing import create_scratch_database
from services.kit.worker import Worker, worker_settings
from services.profile.app import create_app as create_profile
from services.warning.app import create_app as create_warning


@pytest.fixture
def own_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: another pytest run on the machine resets the permissions of
    # its base directory, and the embedded PostgreSQL (its own system user) loses its data.
    directory = Path(tempfile.mkdtemp(prefix="keepwell-outage-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_postgres(own_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres.start(own_dir / "postgres")
    yield server
    server.stop()


@pytest.fixture
def own_redis(own_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis.start(own_dir / "redis")
    yield server
    server.stop()


@pytest.fixture
async def own_database(settings: Settings, own_postgres: EmbeddedPostgres) -> Settings:
    database = await create_scratch_database(own_postgres.url, "kw_outage")
    await asyncio.to_thread(migrations.upgrade, database, ("profile",))
    return settings.model_copy(update={"database_url": database})


@pytest.fixture
def own_redis_settings(settings: Settings, own_redis: EmbeddedRedis) -> Settings:
    """The session's database (only read here) and a Redis of the test's own."""
    return settings.model_copy(update={"redis_url": own_redis.url})


async def ready(client: httpx.AsyncClient) -> tuple[int, list[str]]:
    answer = await client.get("/readyz")
    return answer.status_code, answer.json()["failing"]


async def test_postgres_down_is_503_database_unavailable_then_the_service_recovers_by_itself(
    own_database: Settings, own_postgres: EmbeddedPostgres, token: Callable[..., str]
) -> None:
    # Redis is the session's, only pinged by readiness here.
    app = create_profile(own_database)
    headers = {"Authorization": f"Bearer {token('operator')}"}
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://t", headers=headers
        ) as client,
    ):
        assert (await client.get("/customers")).status_code == 200  # the pool holds a connection
        assert await ready(client) == (200, [])

        await asyncio.to_thread(own_postgres.halt)
        down = await client.get("/customers")
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "database_unavailable"
        assert down.json()["message"] == "数据库暂时不可用，请稍后重试"
        assert down.headers["Retry-After"] == "5"
        created = await client.post(
            "/teams",
            json={"id": "T900", "name": "应急组", "region": "广东", "supervisor_name": "王主管"},
        )
        assert (created.status_code, created.json()["code"]) == (503, "database_unavailable")
        assert await ready(client) == (503, ["database"])

        await asyncio.to_thread(own_postgres.resume)
        assert (await client.get("/customers")).status_code == 200
        assert await ready(client) == (200, [])


async def test_redis_down_is_503_redis_unavailable_where_a_route_needs_it_then_recovers(
    own_redis_settings: Settings, own_redis: EmbeddedRedis, token: Callable[..., str]
) -> None:
    app = create_warning(own_redis_settings)
    headers = {"Authorization": f"Bearer {token('operator')}"}
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://t", headers=headers
        ) as client,
    ):
        assert (await client.post("/detection/runs?day=2026-11-20")).status_code == 202
        await asyncio.to_thread(own_redis.stop)

        queued = await client.post("/detection/runs?day=2026-11-21")
        assert queued.status_code == 503, queued.text
        assert queued.json()["code"] == "redis_unavailable"
        # What needs only PostgreSQL goes on.
        assert (await client.get("/warnings")).status_code == 200
        assert await ready(client) == (503, ["redis"])

        await asyncio.to_thread(own_redis.restart)
        assert (await client.post("/detection/runs?day=2026-11-21")).status_code == 202
        assert await ready(client) == (200, [])


async def answer(ctx: dict[str, Any], n: int) -> int:
    return n


async def test_a_worker_waits_out_a_redis_outage_and_goes_on_working(
    own_redis_settings: Settings, own_redis: EmbeddedRedis
) -> None:
    config = worker_settings(
        "complaint", [answer], settings=own_redis_settings, serve_metrics=False
    )
    worker = Worker(
        **cast(dict[str, Any], get_kwargs(config)), handle_signals=False, poll_delay=0.05
    )
    running = asyncio.create_task(worker.main())
    redis = create_redis(own_redis.url, "complaint")
    try:
        before = await redis.enqueue_job("answer", 1)
        assert before is not None and await before.result(timeout=10) == 1

        await asyncio.to_thread(own_redis.stop)
        # Several polls fail meanwhile; arq's own loop would have ended at the first.
        for _ in range(20):
            await asyncio.sleep(0.05)
            assert not running.done(), running.exception()
        await asyncio.to_thread(own_redis.restart)

        after = await redis.enqueue_job("answer", 2)
        assert after is not None and await after.result(timeout=10) == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await redis.aclose()
