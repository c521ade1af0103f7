"""Per-request GraphQL context: the process-wide service clients and the request."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from strawberry.fastapi import BaseContext

from gateway.clients.base import ServiceClient
from services.kit.config import SERVICES, Settings


@dataclass
class Clients:
    """Built once per process around the one shared HTTP client."""

    http: httpx.AsyncClient
    services: dict[str, ServiceClient]

    @classmethod
    def create(cls, settings: Settings, http: httpx.AsyncClient) -> Clients:
        return cls(
            http=http,
            services={s: ServiceClient(s, settings.url_of(s), http) for s in SERVICES},
        )


class Context(BaseContext):
    def __init__(self, clients: Clients, settings: Settings) -> None:
        super().__init__()
        self.clients = clients
        self.settings = settings
