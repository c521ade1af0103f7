"""The change audit: who changed what through a service's API, when, in which request, and
how it ended.

Every write a person or a partner makes (POST, PUT, PATCH or DELETE answered 2xx) leaves one
row in the service's own ``<schema>.change_audit``: the principal (user id, role, team,
internal caller), the method, the route template (``/customers/{msisdn}``, never the path
itself), the path's parameters in the template's order, the status and the request id.
:class:`AuditedRoute` writes it in the request's own transaction, once the route has
answered and before :func:`services.kit.app.db_session` commits, so a change is recorded if
and only if it committed: a refused write (4xx, 5xx) rolls back and leaves no row, a read
leaves none. A write that touches no table of ours (queueing a detection run) is recorded
in a transaction of its own.

Left out, on purpose: the relay's ``POST /events`` (each event carries its own provenance:
producer, actor and request id in the outbox, the consumer's inbox row), a provider's
pushes of receipts and replies (no principal; each is recorded by the provider's own id),
and what jobs and consumers write (not requests: their rows say which job or event made
them).

A number in the path (``{msisdn}``) is kept normalised, as profile's read audit keeps it,
so an admin finds every change of one customer; an erasure replaces it by the customer's
stand-in (services/kit/erasure.py), the one change the append-only trigger allows.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date, datetime, time
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Row,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.auth import principal_of
from services.kit.clock import BEIJING
from services.kit.db import metadata
from services.kit.http import current_request_id
from services.kit.periods import check_period
from services.kit.values import normalise_lookup

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_SCOPE_KEY = "keepwell.session"
"""Where :func:`services.kit.app.db_session` leaves the request's session for the audit."""

_BY_SCHEMA: dict[str, Table] = {}


def change_audit_table(schema: str) -> Table:
    """The change audit of ``schema``'s service (made once per schema). Append-only: a
    trigger refuses UPDATE and DELETE (migrations/change_audit_v1.py)."""
    if schema in _BY_SCHEMA:
        return _BY_SCHEMA[schema]
    table = Table(
        "change_audit",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("request_id", String(64)),
        # The token's subject and team as it claims them: text, so no length of a claim
        # can make a write fail for its audit row.
        Column("user_id", Text, nullable=False),
        Column("role", String(16), nullable=False),
        Column("team_id", Text),
        Column("caller", String(16)),
        Column("method", String(8), nullable=False),
        Column("route", Text, nullable=False),
        Column("resource_ids", ARRAY(Text), nullable=False),
        Column("status", SmallInteger, nullable=False),
        Index("ix_change_audit_at", "at"),
        Index("ix_change_audit_user_id_id", "user_id", "id"),
        Index("ix_change_audit_resource_ids", "resource_ids", postgresql_using="gin"),
        schema=schema,
    )
    _BY_SCHEMA[schema] = table
    return table


def _resource_id(name: str, value: Any) -> str:
    if name == "msisdn":
        try:
            return normalise_lookup(str(value))
        except ValueError:
            pass
    return str(value)


async def record(request: Request, route: APIRoute, status: int) -> None:
    """One row for a write ``route`` answered with ``status``, in the request's session."""
    principal = principal_of(request)
    if principal is None:
        return  # no token on this route (a provider's push): not a principal's change
    params = request.path_params
    row = {
        "at": clock.now(),
        "request_id": current_request_id(),
        "user_id": principal.user_id,
        "role": principal.role.value,
        "team_id": principal.team_id,
        "caller": principal.caller.value if principal.caller is not None else None,
        "method": request.method,
        "route": route.path,
        "resource_ids": [_resource_id(n, params[n]) for n in route.param_convertors],
        "status": status,
    }
    statement = insert(change_audit_table(request.app.state.service)).values(**row)
    session = request.scope.get(SESSION_SCOPE_KEY)
    if isinstance(session, AsyncSession):
        await session.execute(statement)
        return
    async with request.app.state.resources.session() as own:
        await own.execute(statement)


class AuditedRoute(APIRoute):
    """A route whose successful writes are recorded in the change audit.

    The handler FastAPI builds runs inside the request's function-scoped dependencies, so
    the row is added here, with the answer's status, before the session commits."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await handler(request)
            if request.method in WRITE_METHODS and 200 <= response.status_code < 300:
                await record(request, self, response.status_code)
            return response

        return handle


class ChangeAuditRow(BaseModel):
    """One write through the API that committed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    request_id: str | None = Field(description="The request's X-Request-ID")
    user_id: str = Field(description="Who changed it: the token's subject (a partner's id)")
    role: str
    team_id: str | None
    caller: str | None = Field(description="An internal caller; null for a person or partner")
    method: str
    route: str = Field(description="The route template, e.g. `/customers/{msisdn}`")
    resource_ids: list[str] = Field(
        description="The path's parameters in the template's order (a number normalised; an "
        "erased customer's stand-in)"
    )
    status: int = Field(description="The status it answered")


class ChangeAuditPage(BaseModel):
    items: list[ChangeAuditRow]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )


async def list_changes(
    session: AsyncSession,
    schema: str,
    *,
    user_id: str | None,
    route: str | None,
    resource_id: str | None,
    period_from: date | None,
    period_to: date | None,
    before_id: int | None,
    limit: int,
) -> list[Row[Any]]:
    """Newest first, keyset by id; ``from`` / ``to`` Beijing dates, ``to`` excluded."""
    table = change_audit_table(schema)
    query = select(table)
    if user_id is not None:
        query = query.where(table.c.user_id == user_id)
    if route is not None:
        query = query.where(table.c.route == route)
    if resource_id is not None:
        value = _resource_id("msisdn", resource_id)  # a number in any usual form
        query = query.where(table.c.resource_ids.contains([value]))
    if period_from is not None and period_to is not None:
        check_period(period_from, period_to)
    if period_from is not None:
        query = query.where(table.c.at >= datetime.combine(period_from, time(), BEIJING))
    if period_to is not None:
        query = query.where(table.c.at < datetime.combine(period_to, time(), BEIJING))
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    return list((await session.execute(query.order_by(table.c.id.desc()).limit(limit))).all())
