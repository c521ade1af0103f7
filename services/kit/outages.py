"""Which dependency an error says is down: PostgreSQL, Redis, or neither.

One reading for every process: a service answers 503 ``database_unavailable`` /
``redis_unavailable`` (services/kit/errors.py), a job is retried later instead of failing
for good (services/kit/worker.py), a worker waits for Redis to come back, and a command says
in one line what it cannot reach (keepwell/unreachable.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError

Dependency = Literal["database", "redis"]

# SQLSTATEs of a server that is going away or not there yet: class 08 (connection
# exception: the connection was closed under a statement), 57P01-57P03 (administrator
# shutdown, crash shutdown, "the database system is starting up / shutting down"), 53300
# (too many connections, as a restarted server's clients all come back at once).
_DOWN_STATES = ("57P01", "57P02", "57P03", "53300")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first (SQLAlchemy's ``orig`` included)."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        yield found
        found = getattr(found, "orig", None) or found.__cause__ or found.__context__


def raised_through(exc: BaseException, *packages: str) -> bool:
    """Whether ``exc`` passed through a module of one of ``packages`` on its way up."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(packages):
            return True
        tb = tb.tb_next
    return False


def unavailable(exc: BaseException) -> Dependency | None:
    """The dependency ``exc`` shows unreachable, or None when it is some other error."""
    for found in chain(exc):
        sqlstate = getattr(found, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _DOWN_STATES):
            return "database"
        if isinstance(found, DBAPIError) and found.connection_invalidated:
            return "database"
        if isinstance(found, RedisConnectionError | RedisTimeoutError):
            return "redis"
        if isinstance(found, OSError):  # TimeoutError too
            # A refused socket, or a Unix socket file gone with its server, reaches us
            # unwrapped from the driver's connect: whose it is shows in the frames it left.
            if raised_through(found, "asyncpg", "sqlalchemy"):
                return "database"
            if raised_through(found, "redis"):
                return "redis"
    return None
