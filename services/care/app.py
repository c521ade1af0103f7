"""The care service's FastAPI app."""

from fastapi import FastAPI

import services.care as package
from services.care.consumers import consumer
from services.care.endpoints import receipts_router, router
from services.care.repository import EXPORT_QUERIES
from services.kit.app import create_service_app
from services.kit.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(
        "care",
        title="Keepwell care service",
        description=package.__doc__ or "",
        routers=[router],
        consumer=consumer,
        settings=settings,
        exports=EXPORT_QUERIES,
    )
    # The provider calls this one; it proves itself with its own mechanism, not our JWT.
    app.include_router(receipts_router)
    return app
