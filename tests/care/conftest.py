"""Care fixtures: the sandbox SMS provider on a real port, customers in the read model, and
a dispatcher wired to real PostgreSQL, Redis and the sandbox over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from care_support import OPERATOR, SUPERVISOR, TOMORROW, Clock, SeedCustomers, profile_envelope

from services.care import service
from services.care.config import CareSettings, get_care_settings
from services.care.consumers import consumer
from services.care.dispatch import Dispatcher, build_provider
from services.care.models import Category
from services.care.sandbox.app import create_app as create_sandbox
from services.care.schemas import Audience, CampaignCreate
from services.kit.app import Resources
from services.kit.config import Settings
from services.kit.testing import serve
from services.profile.contract import CustomerCreated, CustomerSnapshot


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox provider served over HTTP; the client talks to its control API."""
    async with serve(create_sandbox()) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.fixture
def care_settings(
    sandbox: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CareSettings]:
    monkeypatch.setenv("CARE_SANDBOX_URL", str(sandbox.base_url))
    monkeypatch.setenv("CARE_BATCH_SIZE", "50")
    get_care_settings.cache_clear()
    yield get_care_settings()
    get_care_settings.cache_clear()


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    res = Resources.open("care", settings)
    yield res
    await res.close()


@pytest.fixture
def clock() -> Clock:
    # Tomorrow 11:00 in Beijing: daytime, and after anything approved during the test.
    return Clock(TOMORROW.replace(hour=3))


@pytest.fixture
def dispatcher(resources: Resources, care_settings: CareSettings, clock: Clock) -> Dispatcher:
    provider = build_provider(care_settings, resources.http)
    return Dispatcher(resources.session, resources.redis, provider, care_settings, clock)


@pytest.fixture
def seed_customers(resources: Resources) -> SeedCustomers:
    """Feed customers through the care consumer, as profile's events would."""

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
def start_campaign(resources: Resources, care_settings: CareSettings) -> Callable[..., Any]:
    """Create, preview and approve a campaign; returns its id (it is then dispatching)."""

    async def start(
        template: str = "{honorific}您好，{manager_name}祝您生活愉快。",
        *,
        category: Category = Category.care,
        audience: Audience | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        async with resources.session() as session:
            campaign = await service.create_campaign(
                session,
                CampaignCreate(
                    name="测试活动",
                    template=template,
                    category=category,
                    audience=audience or Audience(),
                    **fields,
                ),
                OPERATOR,
            )
            await service.preview(session, campaign.id, care_settings)
            await service.approve(session, campaign.id, SUPERVISOR, care_settings)
            return campaign.id

    return start
