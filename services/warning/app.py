"""The warning service's FastAPI app."""

from fastapi import FastAPI

import services.warning as package
from services.kit.app import create_service_app
from services.kit.config import Settings
from services.warning.consumers import consumer
from services.warning.endpoints import ROUTE_ROLES, ROUTE_SCOPES, router
from services.warning.repository import EXPORT_QUERIES


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "warning",
        title="Keepwell warning service",
        description=package.__doc__ or "",
        routers=[router],
        consumer=consumer,
        settings=settings,
        roles=ROUTE_ROLES,
        scopes=ROUTE_SCOPES,
        exports=EXPORT_QUERIES,
    )
