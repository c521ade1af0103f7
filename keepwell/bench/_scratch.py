"""The scratch servers of a benchmark, got the same way by every one of them.

PostgreSQL: a new database, dropped afterwards, on DATABASE_URL's server when that is set
(only its server is used: the database DATABASE_URL names is never opened, so a running
system's data is never touched), else on an embedded server started for the benchmark
(``keepwell bench all`` starts one for all of them and hands it down in
``SHARED_SERVER_VAR``). Redis: always an embedded one of the benchmark's own, since arq
queues on a shared Redis would be worked by another system's workers, and the bench's jobs
by theirs. Benchmarks never read a running ``keepwell run``'s run file (the CLI skips it).

Whatever stops the benchmark before it starts raises :class:`BenchFailed` with one line.
Standard library only at module level: the CLI imports this to learn the error type.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

SHARED_SERVER_VAR = "KEEPWELL_BENCH_POSTGRES_URL"
"""Set by ``keepwell bench all`` for the benchmarks it runs: its embedded server's URL."""


class BenchFailed(Exception):
    """A benchmark that cannot run: ``keepwell`` prints ``error: <message>``, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Scratch:
    dir: Path
    """Files of this run (embedded servers' data, child processes' logs); removed after a
    run that worked, kept after one that failed."""
    database_url: str | None
    redis_url: str | None
    postgres: str | None
    """The server's version (``SHOW server_version``)."""
    database: str | None
    """Where the database is: ``embedded`` or ``DATABASE_URL's server``."""


@asynccontextmanager
async def scratch(
    name: str, *, database: bool = True, redis: bool = False
) -> AsyncIterator[Scratch]:
    """A scratch directory, and as asked a new database and an embedded Redis, for the
    block; everything is stopped and dropped after it."""
    import asyncio

    directory = Path(tempfile.mkdtemp(prefix=f"kw-bench-{name}-"))
    failed = False
    try:
        async with AsyncExitStack() as stack:
            database_url = version = where = redis_url = None
            if database:
                database_url, version, where = await _database(stack, directory, name)
            if redis:
                from services.kit.embedded import EmbeddedRedis

                try:
                    server = await asyncio.to_thread(EmbeddedRedis.start, directory / "redis")
                except Exception as exc:
                    raise BenchFailed(f"cannot start an embedded Redis: {_reason(exc)}") from exc
                stack.callback(server.stop)
                redis_url = server.url
            yield Scratch(directory, database_url, redis_url, version, where)
    except Exception:
        failed = True  # (not when stopped: Ctrl-C, SIGTERM)
        raise
    finally:
        if not failed or not os.listdir(directory):
            shutil.rmtree(directory, ignore_errors=True)


async def _database(stack: AsyncExitStack, directory: Path, name: str) -> tuple[str, str, str]:
    import asyncio

    from keepwell.unreachable import masked

    server = os.environ.get("DATABASE_URL")
    where = "DATABASE_URL's server"
    if not server:
        server, where = os.environ.get(SHARED_SERVER_VAR), "embedded"
    if not server:
        from services.kit.embedded import EmbeddedPostgres

        try:
            embedded = await asyncio.to_thread(EmbeddedPostgres.start, directory / "postgres")
        except Exception as exc:
            raise BenchFailed(
                f"cannot start an embedded PostgreSQL in {directory / 'postgres'}: {_reason(exc)}"
            ) from exc
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
        server = embedded.url
    try:
        url, version = await _create_database(server, f"kw_bench_{name.replace('-', '_')}")
    except Exception as exc:
        hint = "; unset DATABASE_URL to use an embedded one" if where != "embedded" else ""
        raise BenchFailed(
            f"cannot create a scratch database on {where} {masked(server)}: {_reason(exc)}{hint}"
        ) from exc
    from services.kit.testing import drop_database

    stack.push_async_callback(drop_database, url)
    return url, version, where


async def _create_database(server: str, prefix: str) -> tuple[str, str]:
    """A new database on ``server``'s server and its version. The maintenance database
    ``postgres`` is asked, or the one the URL names when there is no such database."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from services.kit.db import libpq_url

    url = make_url(libpq_url(server))
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    for admin in dict.fromkeys(["postgres", url.database or "postgres"]):
        try:
            conn = await asyncpg.connect(
                url.set(database=admin).render_as_string(hide_password=False), timeout=10
            )
        except asyncpg.InvalidCatalogNameError:
            if admin == (url.database or "postgres"):
                raise
            continue
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
            version = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
        return url.set(database=name).render_as_string(hide_password=False), version
    raise AssertionError("unreachable")


@asynccontextmanager
async def shared_server() -> AsyncIterator[dict[str, str]]:
    """For ``keepwell bench all``: the environment that gives every benchmark it runs the
    same PostgreSQL server (each still makes a database of its own there). Nothing when
    DATABASE_URL is set; else one embedded server for all, instead of one each."""
    import asyncio

    if os.environ.get("DATABASE_URL"):
        yield {}
        return
    from services.kit.embedded import EmbeddedPostgres

    directory = Path(tempfile.mkdtemp(prefix="kw-bench-all-"))
    try:
        embedded = await asyncio.to_thread(EmbeddedPostgres.start, directory / "postgres")
    except Exception as exc:
        raise BenchFailed(
            f"cannot start an embedded PostgreSQL in {directory / 'postgres'}: {_reason(exc)}"
        ) from exc
    try:
        yield {SHARED_SERVER_VAR: embedded.url}
    finally:
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(directory, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    from keepwell.unreachable import innermost_reason

    return innermost_reason(exc)


def machine(found: Scratch | None) -> dict[str, object]:
    """What the figures were measured on."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "postgres": found.postgres if found is not None else None,
        "load_average_1m": round(load, 2) if load is not None else None,
    }
