"""The profile service's FastAPI app."""

from fastapi import FastAPI

import services.profile as package
from services.kit.app import create_service_app
from services.kit.config import Settings
from services.profile.consumers import consumer
from services.profile.endpoints import ROUTE_ROLES, ROUTE_SCOPES, router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "profile",
        title="Keepwell profile service",
        description=package.__doc__ or "",
        routers=[router],
        consumer=consumer,
        settings=settings,
        roles=ROUTE_ROLES,
        scopes=ROUTE_SCOPES,
    )
