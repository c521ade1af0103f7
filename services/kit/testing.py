"""Test and benchmark support: real servers, real ports, no mocks of our own parts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from keepwell.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port


@dataclass(frozen=True)
class Infra:
    database_url: str
    redis_url: str


async def create_scratch_database(server_url: str, prefix: str = "kw_test") -> str:
    return await ensure_database(server_url, f"{prefix}_{uuid.uuid4().hex[:10]}")


async def drop_database(database_url: str) -> None:
    import asyncpg

    url = make_url(database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def infrastructure(
    scratch: Path, database_url: str | None, redis_url: str | None
) -> Iterator[Infra]:
    """A scratch database on the given server (or an embedded one) and a Redis."""
    pg: EmbeddedPostgres | None = None
    rd: EmbeddedRedis | None = None
    try:
        if database_url is None:
            pg = EmbeddedPostgres.start(scratch / "postgres")
            database_url = pg.url
        if redis_url is None:
            rd = EmbeddedRedis.start(scratch / "redis")
            redis_url = rd.url
        db = asyncio.run(create_scratch_database(database_url))
        try:
            yield Infra(database_url=db, redis_url=redis_url)
        finally:
            asyncio.run(drop_database(db))
    finally:
        if rd is not None:
            rd.stop()
        if pg is not None:
            pg.stop()


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a loopback port for the block; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
