"""Test and benchmark support: real servers, real ports, no mocks of our own parts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.kit.app import create_service_app
from services.kit.config import Settings
from services.kit.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port
from services.kit.events import Envelope, Event, event_tables
from services.kit.events.consumer import Consumer
from services.kit.events.contracts import subscribe


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


class ProbePinged(Event):
    """An event used only to exercise the event machinery (tests and ``bench events``)."""

    event_type = "probe.pinged"
    producer = "profile"
    n: int


class ProbeConsumer:
    """A consumer in a schema of its own whose effect is a row per applied event, so tests
    and benchmarks can see exactly what was applied, how often and in which order."""

    def __init__(self, schema: str = "probe") -> None:
        self.schema = schema
        self.consumer = Consumer(schema)
        subscribe(schema, frozenset({ProbePinged.event_type}))
        self.failing: set[int] = set()  # event numbers whose handler raises, while listed
        self.effect = Table(
            "effect",
            MetaData(),
            Column("id", BigInteger, Identity(), primary_key=True),
            Column("event_id", Uuid, nullable=False),
            Column("aggregate_id", String(100), nullable=False),
            Column("n", Integer, nullable=False),
            Column(
                "applied_at",
                DateTime(timezone=True),
                nullable=False,
                server_default=text("clock_timestamp()"),
            ),
            schema=schema,
        )

        @self.consumer.handles_many(ProbePinged)
        async def apply(
            session: AsyncSession, events: Sequence[tuple[ProbePinged, Envelope]]
        ) -> None:
            # One effect row per event, written in one statement per run of a batch, as a
            # consumer applying many events would.
            failing = [event.n for event, _ in events if event.n in self.failing]
            if failing:
                raise RuntimeError(f"probe told to fail on {failing[0]}")
            await session.execute(
                self.effect.insert(),
                [
                    {"event_id": envelope.id, "aggregate_id": envelope.aggregate_id, "n": event.n}
                    for event, envelope in events
                ],
            )

    async def create_tables(self, engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            await conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            await conn.run_sync(event_tables(self.schema).inbox.create)
            await conn.run_sync(self.effect.create)

    async def drop_tables(self, engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    def app(self, settings: Settings) -> FastAPI:
        return create_service_app(
            self.schema,
            title="probe consumer",
            description="",
            consumer=self.consumer,
            settings=settings,
        )

    async def applied(self, engine: AsyncEngine) -> list[tuple[str, int]]:
        """(aggregate id, n) of every applied event, in the order they were applied."""
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(self.effect.c.aggregate_id, self.effect.c.n).order_by(self.effect.c.id)
            )
            return [(r.aggregate_id, r.n) for r in rows]
