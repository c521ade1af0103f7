"""Per-request GraphQL context: who is calling, the service clients, the request's loaders."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import httpx
from graphql import GraphQLError
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext

from gateway.clients.base import Caller, ServiceClient
from gateway.config import GatewaySettings
from gateway.errors import Unauthenticated
from gateway.identity import Verifier
from gateway.live.hub import Connection
from gateway.loaders import Loaders
from gateway.observe import Seen
from gateway.ratelimit import Meter
from services.kit.auth import Principal, Role
from services.kit.config import SERVICES, Settings
from services.kit.db import create_sessionmaker


@dataclass
class Clients:
    """Built once per process around the one shared HTTP client."""

    http: httpx.AsyncClient
    services: dict[str, ServiceClient]
    verifier: Verifier
    sessionmaker: async_sessionmaker[AsyncSession]
    """The gateway's own schema: partners' API keys."""

    @classmethod
    def create(
        cls,
        settings: Settings,
        gateway: GatewaySettings,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        tracer: Tracer | None = None,
    ) -> Clients:
        return cls(
            http=http,
            sessionmaker=create_sessionmaker(engine),
            services={
                s: ServiceClient(
                    s,
                    settings.url_of(s),
                    http,
                    gateway.timeouts.get(s, settings.http_timeout_seconds),
                    tracer,
                )
                for s in SERVICES
            },
            verifier=Verifier(gateway, settings),
        )


class Context(BaseContext):
    def __init__(
        self,
        clients: Clients,
        settings: Settings,
        gateway: GatewaySettings,
        principal: Principal | None,
        scopes: frozenset[str] | None = None,
    ) -> None:
        super().__init__()
        self.clients = clients
        self.settings = settings
        self.gateway = gateway
        self.principal = principal
        self.scopes = scopes
        """A partner's API key scopes; ``None`` for people (their role decides)."""
        self.rate: Meter | None = None
        """The caller's rate limit (gateway/ratelimit.py); ``None``: unlimited."""
        self.cost = 0
        """The cost the limits measured of the operation that runs (gateway/limits.py)."""
        self.seen: Seen | None = None
        """The operation as its metrics and trace see it (gateway/observe.py)."""
        self.live: Connection | None = None
        """A WebSocket connection's share of the live updates (gateway/live/); ``None``
        over HTTP."""

    @cached_property
    def caller(self) -> Caller:
        """The signed-in caller; asking for it without one is the caller's error."""
        if self.principal is None:
            raise Unauthenticated()
        return Caller(self.principal, self.settings, self.gateway.read_retries)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(
            self.clients.services,
            self.caller,
            by_customer_id=self.caller.principal.role is Role.partner,
        )

    def page_size(self, first: int) -> int:
        """``first`` as a page size, within the bound every list keeps."""
        bound = self.gateway.max_page_size
        if not 1 <= first <= bound:
            raise GraphQLError(
                f"first：须在 1 到 {bound} 之间",
                extensions={"code": "BAD_USER_INPUT", "field": "first"},
            )
        return first

    def service(self, name: str) -> ServiceClient:
        return self.clients.services[name]
