"""The gateway's FastAPI app: GraphQL at /graphql (GraphiQL in development), behind the
edge's HTTP rules (gateway/http.py) and CORS for the configured origins only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway import apikeys
from gateway.channels import ChannelPolicy, ChannelSender
from gateway.config import GatewaySettings, get_gateway_settings
from gateway.context import Clients, Context
from gateway.http import EdgeMiddleware, EdgeRouter
from gateway.live.feed import events_router, prune_inbox_hourly
from gateway.live.hub import Connections, Hub
from gateway.observe import Observer
from gateway.persisted import PersistedQueries
from gateway.ratelimit import Meter, RateLimiter
from gateway.schema import schema
from services.kit.auth import Principal
from services.kit.config import Settings, get_settings
from services.kit.db import create_engine, session_scope
from services.kit.errors import Unauthorized, install_error_handlers
from services.kit.http import REQUEST_ID_HEADER, create_http_client, valid_request_id
from services.kit.keys import Signer, require_signing_key
from services.kit.logging import configure_logging
from services.kit.metrics import MetricsMiddleware, metrics_endpoint
from services.kit.tracing import FASTAPI_TELEMETRY, tracer

API_KEY_HEADER = "X-API-Key"
"""Partners' systems sign in with an API key in this header (people: a bearer token)."""


def create_app(settings: Settings | None = None, gateway: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = gateway or get_gateway_settings()
    configure_logging("gateway", settings.log_level)
    traced = tracer("gateway", settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The gateway signs the tokens of the people it serves: no key, no gateway.
        require_signing_key(settings, Signer.user)
        http = create_http_client(settings.http_timeout_seconds, tracing=settings.tracing_on)
        engine = create_engine(settings.database_url, pool_size=min(settings.db_pool_size, 5))
        app.state.clients = Clients.create(settings, gateway, http, engine, traced)
        # Rate limits and persisted queries (gateway/ratelimit.py, gateway/persisted.py):
        # Redis, with short timeouts, since both go on without it.
        timeout = gateway.redis_timeout_seconds
        redis = Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        app.state.rate_limiter = RateLimiter(redis, gateway.rate_min_cost)
        app.state.persisted = PersistedQueries(
            redis, app.state.clients.sessionmaker, gateway, settings.env == "production"
        )
        hub = app.state.hub = Hub(settings.redis_url)
        await hub.start()
        app.state.connections = Connections(
            hub,
            gateway.live_max_connections,
            gateway.live_max_connections_per_user,
            gateway.live_max_subscriptions,
        )
        pruning = asyncio.create_task(prune_inbox_hourly(app.state.clients.sessionmaker, settings))
        # Staff channels (gateway/channels): every process sends a share of the notices.
        sending: asyncio.Task[None] | None = None
        if gateway.channel_sender:
            app.state.channel_sender = ChannelSender(
                app.state.clients.sessionmaker, http, ChannelPolicy.from_settings(gateway, settings)
            )
            sending = asyncio.create_task(app.state.channel_sender.run())
        try:
            yield
        finally:
            pruning.cancel()
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            await hub.stop()
            await http.aclose()
            await redis.aclose()
            await engine.dispose()

    async def context(request: HTTPConnection) -> Context:
        if isinstance(request, WebSocket):
            # Who is calling is known at connection_init (gateway/live/subscriptions.py).
            ctx = Context(request.app.state.clients, settings, gateway, None)
            ctx.live = request.app.state.connections.connection()
            return ctx
        assert isinstance(request, Request)
        ctx, partner = await caller(request)
        if gateway.rate_limits:
            ctx.rate = _meter(request.app.state.rate_limiter, gateway, request, ctx, partner)
        return ctx

    async def caller(request: Request) -> tuple[Context, apikeys.Partner | None]:
        clients: Clients = request.app.state.clients
        key = request.headers.get(API_KEY_HEADER)
        if key is not None:
            async with session_scope(clients.sessionmaker) as session:
                partner = await apikeys.authenticate(session, key)
            return Context(clients, settings, gateway, partner.principal, partner.scopes), partner
        principal: Principal | None = None
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized("Authorization：须为 Bearer <令牌>")
            principal = await clients.verifier.principal(token.strip())
        return Context(clients, settings, gateway, principal), None

    graphql = EdgeRouter(
        schema,
        gateway=gateway,
        observer=Observer(gateway.metrics_max_operations, traced),
        context_getter=context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=gateway.live_init_timeout_seconds),
        graphql_ide="graphiql" if settings.env == "development" else None,
    )
    app = FastAPI(
        title="Keepwell gateway", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    install_error_handlers(app)
    app.include_router(graphql, prefix="/graphql")
    app.include_router(events_router())

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.add_middleware(EdgeMiddleware, gateway=gateway)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=gateway.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=[
            "authorization",
            "content-type",
            API_KEY_HEADER.lower(),
            REQUEST_ID_HEADER.lower(),
            *gateway.csrf_preflight_headers,
        ],
        expose_headers=[REQUEST_ID_HEADER, *RATE_LIMIT_HEADERS],
        max_age=600,
    )
    app.add_middleware(MetricsMiddleware, service="gateway")
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=valid_request_id
    )
    return app


RATE_LIMIT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "Retry-After",
)


def _meter(
    limiter: RateLimiter,
    gateway: GatewaySettings,
    request: Request,
    ctx: Context,
    partner: apikeys.Partner | None,
) -> Meter:
    """The caller's bucket: a partner's API key (its own rate, else the partners'), a
    person's user id, or else the client's address."""
    if partner is not None:
        rate = partner.rate_per_minute or gateway.rate_partner_per_minute
        return limiter.meter("partner", partner.key_id, rate)
    if ctx.principal is not None:
        return limiter.meter("user", ctx.principal.user_id, gateway.rate_user_per_minute)
    address = request.client.host if request.client else "unknown"
    return limiter.meter("anonymous", address, gateway.rate_anonymous_per_minute)
