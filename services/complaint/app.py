"""The complaint service's FastAPI app."""

from fastapi import FastAPI

import services.complaint as package
from services.complaint.consumers import consumer
from services.complaint.endpoints import ROUTE_ROLES, ROUTE_SCOPES, router
from services.complaint.repository import EXPORT_QUERIES
from services.kit.app import create_service_app
from services.kit.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "complaint",
        title="Keepwell complaint service",
        description=package.__doc__ or "",
        routers=[router],
        consumer=consumer,
        settings=settings,
        exports=EXPORT_QUERIES,
        roles=ROUTE_ROLES,
        scopes=ROUTE_SCOPES,
    )
