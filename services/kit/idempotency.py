"""``Idempotency-Key`` on create routes: a retried POST answers the first result and creates
nothing new (draft-ietf-httpapi-idempotency-key-header, as Stripe does it).

A key belongs to one caller (the principal of the token) on one route; what it answered is
kept in the service's own schema (``<schema>.idempotency_key``) for
``KEEPWELL_IDEMPOTENCY_KEY_HOURS`` (24), with a fingerprint of the request (SHA-256 of the
path, the query and the body's bytes). The row is written in the request's own
transaction, just before the commit that makes the route's writes durable, so a key is
known exactly when what its first request made is: a crash in between leaves neither.

- A key not seen (or expired): the route runs; a success (below 400) is stored.
- The same key and request again: the stored status, headers and body, with
  ``Idempotent-Replayed: true``; the route does not run.
- The same key with another request: 422 ``idempotency_key_reused``.
- The same key while its first request is still running: 409 ``idempotency_key_in_flight``
  (a transaction-scoped advisory lock on the key; a retry after it ends gets the answer).
- Errors are not stored: a refused request wrote nothing (its transaction rolled back),
  so sending it again, corrected or not, is a new attempt.

Routes take part by declaring :data:`services.kit.app.Idempotent` among their dependencies
on a router built with ``route_class=IdempotentRoute``; the app factory refuses one without
the other. Expired keys are deleted by each worker's hourly :func:`prune` cron.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.audit import AuditedRoute
from services.kit.auth import Principal
from services.kit.db import metadata
from services.kit.errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
"""1 to 255 printable ASCII characters, no space at either end (a UUID is the usual key)."""

HEADER_DESCRIPTION = (
    "Makes a retry of this request safe: 1-255 printable ASCII characters (a UUID, say), "
    'new for each new request; the IETF draft\'s quoted form (`"..."`) is the key inside '
    "the quotes. For a day after a success (`KEEPWELL_IDEMPOTENCY_KEY_HOURS`, 24), the "
    "same key from the same caller on this route answers the first status and body again "
    "with `Idempotent-Replayed: true` and changes nothing; with another body, path or query "
    "it answers 422 `idempotency_key_reused`; while the first request is still running, 409 "
    "`idempotency_key_in_flight`. Errors are not kept: after one, the key may be used again."
)

_KEY = re.compile(KEY_PATTERN)
_DROPPED_HEADERS = frozenset({"content-length"})


class IdempotencyKeyInvalid(InvalidInput):
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"


_BY_SCHEMA: dict[str, Table] = {}


def idempotency_table(schema: str) -> Table:
    """The stored answers of ``schema``'s service (made once per schema)."""
    if schema in _BY_SCHEMA:
        return _BY_SCHEMA[schema]
    table = Table(
        "idempotency_key",
        metadata,
        Column("caller", Text, primary_key=True),
        Column("route", Text, primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", SmallInteger, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
        schema=schema,
    )
    _BY_SCHEMA[schema] = table
    return table


def parse_key(raw: str) -> str:
    """The key a header value names, or 422 naming the header."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # an sf-string, as the draft has it
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not _KEY.fullmatch(value):
        raise IdempotencyKeyInvalid(
            f"{HEADER}：须为 1 到 {MAX_KEY_LENGTH} 个可打印 ASCII 字符（如 UUID），首尾不含空格",
            field=HEADER,
        )
    return value


def caller_of(principal: Principal) -> str:
    """Whose keys these are: the principal as the services see it (signer, role, team, user),
    so a key never answers another caller, nor the same person acting in another role."""
    signer = principal.caller.value if principal.caller is not None else "user"
    return json.dumps(
        [signer, principal.role.value, principal.team_id, principal.user_id], ensure_ascii=False
    )


def fingerprint(path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{path}?{query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """A kept answer, as it is replayed."""

    status_code: int
    headers: list[list[str]]
    body: bytes

    def response(self) -> Response:
        response = Response(content=self.body, status_code=self.status_code)
        for name, value in self.headers:
            response.headers.append(name, value)
        response.headers[REPLAYED_HEADER] = "true"
        return response


class Replay(Exception):  # control flow, not an error: the route must not run
    """Raised by the dependency to answer a kept response instead of running the route;
    :class:`IdempotentRoute` turns it into that response."""

    def __init__(self, stored: Stored) -> None:
        super().__init__("replay")
        self.stored = stored


@dataclass
class Claim:
    """A key taken by the running request: its answer is stored in the same transaction."""

    session: AsyncSession
    table: Table
    caller: str
    route: str
    key: str
    fingerprint: str
    hours: float

    async def record(self, response: Response) -> None:
        if response.status_code >= 400:
            return  # an error wrote nothing; the key stays free
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            raise RuntimeError(f"{self.route}: an idempotent route must answer a whole body")
        now = clock.now()
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in response.raw_headers
            if name.decode("latin-1").lower() not in _DROPPED_HEADERS
        ]
        await self.session.execute(
            insert(self.table).values(
                caller=self.caller,
                route=self.route,
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=response.status_code,
                headers=headers,
                body=body,
                created_at=now,
                expires_at=now + timedelta(hours=self.hours),
            )
        )


def _lock_ids(*parts: str) -> tuple[int, int]:
    """Two int4 for ``pg_try_advisory_xact_lock(int, int)``: a key space apart from the
    single-bigint locks elsewhere (detection, imports)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return (
        int.from_bytes(digest[:4], "big", signed=True),
        int.from_bytes(digest[4:8], "big", signed=True),
    )


async def begin(
    session: AsyncSession,
    request: Request,
    schema: str,
    principal: Principal,
    raw_key: str,
    hours: float,
) -> Claim:
    """Take ``raw_key`` for this request, or raise: :class:`Replay` for a kept answer of the
    same request, 422 for another request's key, 409 while the key's request runs."""
    key = parse_key(raw_key)
    table = idempotency_table(schema)
    route = f"{request.method} {getattr(request.scope.get('route'), 'path', request.url.path)}"
    caller = caller_of(principal)
    request_print = fingerprint(request.url.path, request.url.query, await request.body())
    lock = _lock_ids(schema, caller, route, key)
    taken = await session.scalar(select(func.pg_try_advisory_xact_lock(*lock)))
    if not taken:
        raise IdempotencyKeyInFlight(f"使用此 {HEADER} 的请求仍在处理中，请稍后重试", field=HEADER)
    where = (table.c.caller == caller, table.c.route == route, table.c.key == key)
    row = (await session.execute(select(table).where(*where))).first()
    if row is not None and row.expires_at <= clock.now():
        await session.execute(delete(table).where(*where))  # expired: as if never seen
        row = None
    if row is not None:
        if row.fingerprint != request_print:
            raise IdempotencyKeyReused(
                f"{HEADER} {key!r} 已用于另一请求（请求体、路径或查询参数不同）；新请求须用新键",
                field=HEADER,
            )
        raise Replay(Stored(row.status_code, [list(h) for h in row.headers], bytes(row.body)))
    return Claim(session, table, caller, route, key, request_print, hours)


CLAIM_SCOPE_KEY = "keepwell.idempotency"


class IdempotentRoute(AuditedRoute):
    """A route whose kept answers are replayed and whose successes are stored, and, as every
    service route, whose writes are audited (a replay changes nothing and is not).

    The handler FastAPI builds runs inside the request's function-scoped dependencies, so
    the answer is stored here before :func:`services.kit.app.db_session` commits."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.stored.response()
            claim = request.scope.get(CLAIM_SCOPE_KEY)
            if isinstance(claim, Claim):
                await claim.record(response)
            return response

        return handle


async def prune(session: AsyncSession, schema: str, now: datetime | None = None) -> int:
    """Delete the keys of ``schema`` that have expired; how many."""
    table = idempotency_table(schema)
    result = await session.execute(delete(table).where(table.c.expires_at <= (now or clock.now())))
    return int(getattr(result, "rowcount", 0) or 0)
