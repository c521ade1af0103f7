"""The app factory every service uses: resources, middleware, errors, health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

import httpx
from arq.connections import ArqRedis
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.kit import audit, idempotency
from services.kit.access import (
    KIT_ROUTE_ROLES,
    RouteKey,
    RouteRoles,
    RouteScopes,
    depends_on,
    route_roles,
    routes,
    undeclared,
    unknown_entries,
)
from services.kit.auth import Acting, Principal, current_principal, require_caller, require_role
from services.kit.config import Settings, get_settings
from services.kit.cursors import decode_cursor, encode_cursor
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.erasure import export_rows
from services.kit.errors import ERROR_RESPONSES, install_error_handlers
from services.kit.events.consumer import Consumer
from services.kit.events.webhooks import events_router
from services.kit.http import REQUEST_ID_HEADER, create_http_client, valid_request_id
from services.kit.inputs import BodyLimit, guard_inputs
from services.kit.keys import Signer
from services.kit.logging import configure_logging
from services.kit.metrics import MetricsMiddleware, metrics_endpoint
from services.kit.periods import FROM_DESCRIPTION, TO_DESCRIPTION
from services.kit.redis import create_redis
from services.kit.tracing import FASTAPI_TELEMETRY, TracingMiddleware, tracer

READINESS_TIMEOUT_SECONDS = 2.0


@dataclass
class Resources:
    """What a service process holds for its lifetime, shared by all requests."""

    service: str
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    http: httpx.AsyncClient

    @classmethod
    def open(cls, service: str, settings: Settings) -> Resources:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        return cls(
            service=service,
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            redis=create_redis(settings.redis_url, service),
            http=create_http_client(settings.http_timeout_seconds, tracing=settings.tracing_on),
        )

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work outside a request (jobs, commands): commit on success."""
        return session_scope(self.sessionmaker, redis=self.redis, service=self.service)

    async def in_batches(
        self, batch: Callable[[AsyncSession], Awaitable[int]], batch_size: int
    ) -> int:
        """Run ``batch`` one committed transaction at a time until it does fewer than
        ``batch_size`` rows, so a nightly job never holds locks long; the rows it did."""
        total = 0
        while True:
            async with self.session() as session:
                done = await batch(session)
            total += done
            if done < batch_size:
                return total

    async def close(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit on success, roll back on error.

    Always declared with ``scope="function"`` (as :data:`Session` does): FastAPI otherwise
    runs the code after ``yield``, the commit, once the response is already sent, and a
    commit that fails would leave the client with a 2xx for a write that never happened.
    """
    async with resources(request).session() as session:
        request.scope[audit.SESSION_SCOPE_KEY] = session  # the change audit's row joins it
        yield session


Session = Annotated[AsyncSession, Depends(db_session, scope="function")]


async def idempotency_key(
    request: Request,
    session: Session,
    principal: Acting,
    key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description=idempotency.HEADER_DESCRIPTION,
            json_schema_extra={
                "minLength": 1,
                "maxLength": idempotency.MAX_KEY_LENGTH,
                "pattern": idempotency.KEY_PATTERN,
            },
        ),
    ] = None,
) -> None:
    """A create route's ``Idempotency-Key`` (services/kit/idempotency.py): a kept answer is
    replayed, a new key is taken in the request's transaction and the answer stored there."""
    if key is None:
        return
    res = resources(request)
    request.scope[idempotency.CLAIM_SCOPE_KEY] = await idempotency.begin(
        session, request, res.service, principal, key, res.settings.idempotency_key_hours
    )


Idempotent = Depends(idempotency_key)
"""``dependencies=[Idempotent]`` on a create route, of a router made with
``route_class=IdempotentRoute``: the route takes an ``Idempotency-Key`` header."""


def idempotent_routes(app: FastAPI) -> list[RouteKey]:
    """Every (method, path) of the app that takes an ``Idempotency-Key``."""
    return [key for key, dependant in routes(app) if depends_on(dependant, idempotency_key)]


def _misrouted(app: FastAPI) -> list[str]:
    """Idempotent routes whose answers would never be stored (not an IdempotentRoute)."""
    return [
        str(context.path)
        for context in iter_route_contexts(app.routes)
        if depends_on(getattr(context, "dependant", None), idempotency_key)
        and not isinstance(context.original_route, idempotency.IdempotentRoute)
    ]


def _unaudited(app: FastAPI) -> list[RouteKey]:
    """Writes a person or partner may make whose changes would not be recorded (not an
    AuditedRoute); routes only an internal caller may call (the relay's) need none."""
    admitted = route_roles(app)
    return [
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        for method in sorted(context.methods or ())
        if method in audit.WRITE_METHODS
        and admitted.get((method, str(context.path)))
        and not isinstance(context.original_route, audit.AuditedRoute)
    ]


async def _check(probe: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(probe(), READINESS_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; say which and why
        return f"error: {type(exc).__name__}: {exc}".strip()
    return "ok"


async def _db_probe(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz(request: Request) -> dict[str, str]:
        return {"status": "ok", "service": resources(request).service}

    @router.get(
        "/readyz",
        summary="Database and Redis are reachable",
        responses={503: {"description": "A dependency is unreachable; `failing` names it"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        res = resources(request)
        database, redis = await asyncio.gather(
            _check(lambda: _db_probe(res.engine)), _check(res.redis.ping)
        )
        checks = {"database": database, "redis": redis}
        failing = [name for name, result in checks.items() if result != "ok"]
        body = {
            "service": res.service,
            "ready": not failing,
            "checks": checks,
            "failing": failing,
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    router.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return router


def _whoami_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.get("/whoami", summary="The principal your token acts as")
    async def whoami(principal: Acting) -> Principal:
        return principal

    return router


def _exports_router(service: str, queries: Mapping[str, str]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/exports/{msisdn}",
        summary=f"{service.capitalize()}'s part of everything held about one customer (admin)",
        dependencies=[Depends(require_role())],
    )
    async def export_customer(msisdn: str, session: Session) -> dict[str, list[Any]]:
        return await export_rows(session, queries, msisdn)

    return router


def _audit_router(service: str) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get(
        "/audit/changes",
        summary=f"Every change made through {service}'s API, newest first (admin)",
        description="One row per write (POST, PUT, PATCH, DELETE) that answered 2xx, written "
        "in the write's own transaction: who (user id, role, team, internal caller), the "
        "method, the route template and the path's parameters (`resource_ids`), the status, "
        "when and the request id. Refused writes and reads leave none; neither do the "
        "relay's event deliveries, a provider's pushes or the jobs. `resource_id` matches "
        "any of a row's path parameters (a number in any usual form). `from` / `to` are "
        "Beijing dates, `to` excluded; either may be left out.",
        dependencies=[Depends(require_role())],
    )
    async def list_changes(
        request: Request,
        session: Session,
        user_id: str | None = None,
        route: Annotated[
            str | None, Query(description="Exact route template, e.g. `/campaigns/{campaign_id}`")
        ] = None,
        resource_id: str | None = None,
        period_from: Annotated[
            date | None, Query(alias="from", description=FROM_DESCRIPTION)
        ] = None,
        period_to: Annotated[date | None, Query(alias="to", description=TO_DESCRIPTION)] = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    ) -> audit.ChangeAuditPage:
        rows = await audit.list_changes(
            session,
            resources(request).service,
            user_id=user_id,
            route=route,
            resource_id=resource_id,
            period_from=period_from,
            period_to=period_to,
            before_id=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return audit.ChangeAuditPage(
            items=[audit.ChangeAuditRow.model_validate(r) for r in rows],
            next_cursor=encode_cursor(rows[-1].id) if rows and more else None,
        )

    return router


def create_service_app(
    service: str,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    consumer: Consumer | None = None,
    settings: Settings | None = None,
    roles: RouteRoles | None = None,
    scopes: RouteScopes | None = None,
    exports: Mapping[str, str] | None = None,
) -> FastAPI:
    """A service's FastAPI app. Every route in ``routers`` requires a valid internal token
    and declares the roles that may call it: a ``require_role`` gate, or an entry of
    ``roles`` (the service's registry, services/kit/access.py); an app with a route that
    declares neither is refused here. ``scopes`` names what a partner needs on a route.
    ``exports`` are the queries of the service's part of a customer's export."""
    settings = settings or get_settings()
    configure_logging(service, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = Resources.open(service, settings)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(
        title=title,
        description=description,
        version="1",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
        # Every route, those a service includes itself too: input no route can take is
        # refused before the route sees it (services/kit/inputs.py).
        dependencies=[Depends(guard_inputs)],
    )
    app.state.service = service  # internal callers are confined to routes of named services
    app.state.route_roles = {**KIT_ROUTE_ROLES, **(roles or {})}
    app.state.route_scopes = dict(scopes or {})
    install_error_handlers(app)
    app.include_router(_health_router())
    if consumer is not None:
        # Only the relay may deliver events: a token signed with the relay's key.
        app.include_router(
            consumer.router(
                db_session,
                require_caller(Signer.relay),
                retention=timedelta(days=settings.event_retention_days),
            ),
            responses=ERROR_RESPONSES,
        )
    for router in (
        _whoami_router(),
        events_router(service, db_session, Idempotent, production=settings.env == "production"),
        *routers,
        *([_exports_router(service, exports)] if exports else []),
        _audit_router(service),
    ):
        app.include_router(
            router, dependencies=[Depends(current_principal)], responses=ERROR_RESPONSES
        )
    # No body larger than the setting is read (413; a route may allow more with its own
    # max_body_size); inside the metrics, so a refusal is counted like any answer.
    missing, stale = undeclared(app), unknown_entries(app)
    if missing or stale:
        raise RuntimeError(
            f"{service}: routes without declared roles {missing}; "
            f"role or scope entries naming no route, or scopes where no partner is admitted "
            f"{stale}"
        )
    if misrouted := _misrouted(app):
        raise RuntimeError(
            f"{service}: routes taking an Idempotency-Key on a router without "
            f"route_class=IdempotentRoute (their answers would never be kept): {misrouted}"
        )
    if unaudited := _unaudited(app):
        raise RuntimeError(
            f"{service}: writes on a router without route_class=AuditedRoute (or "
            f"IdempotentRoute), whose changes would not be audited: {unaudited}"
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=service)
    if (traced := tracer(service, settings)) is not None:
        app.add_middleware(TracingMiddleware, tracer=traced)
    # Outermost, so every log line of the request, including the access line, has the id.
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=valid_request_id
    )
    return app
