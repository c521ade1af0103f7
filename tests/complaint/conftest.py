"""Complaint fixtures: customers in the read model (through the consumer, as profile's
events would put them), the service's resources, and API clients per role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from complaint_support import STANDARD, Api, profile_envelope

from services.complaint import service
from services.complaint.app import create_app
from services.complaint.consumers import consumer
from services.kit.app import Resources
from services.kit.config import Settings
from services.profile.contract import CustomerCreated, CustomerSnapshot


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    res = Resources.open("complaint", settings)
    yield res
    await res.close()


@pytest.fixture
def seed_customers(resources: Resources) -> Callable[..., Any]:
    async def seed(*snapshots: CustomerSnapshot) -> None:
        envelopes = [
            profile_envelope(CustomerCreated(customer=s), seq=i + 1)
            for i, s in enumerate(snapshots)
        ]
        async with resources.session() as session:
            results = await consumer.receive(session, envelopes)
        assert {r.status for r in results} == {"processed"}

    return seed


@pytest.fixture
async def world(resources: Resources, seed_customers: Callable[..., Any]) -> Resources:
    """Defaults installed (categories, calendar, policies) and the standard customers."""
    service._CALENDAR_CACHE.clear()
    async with resources.session() as session:
        await service.install_defaults(session)
    await seed_customers(*STANDARD)
    return resources


@pytest.fixture
def api(app_client: Any, world: Resources) -> Api:
    """``async with api(role="manager", user="m1", team="t1") as client:``"""

    def open_client(role: str | None = "admin", **claims: Any) -> Any:
        return app_client(create_app(), role=role, **claims)

    return open_client
