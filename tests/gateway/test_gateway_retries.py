"""The gateway retries a create whose answer was lost with the same Idempotency-Key, so the
service answers the first result again and nothing is created twice; other writes are
never retried."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clients.base import Caller, ServiceClient
from gateway.errors import ServiceUnavailable
from services.kit.auth import Principal, Role
from services.kit.config import Settings
from services.profile.app import create_app as create_profile

TEAM = {"id": "T9", "name": "深圳福田VIP团队", "region": "广东", "supervisor_name": "陈洁"}


class LosesTheFirstAnswer(httpx.AsyncBaseTransport):
    """Hands every request to the service, but loses the answer to the first POST after the
    service has made it: what a timeout or a dropped connection looks like to the gateway."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.posts: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST":
            self.posts.append(request.headers.get("idempotency-key"))
            if len(self.posts) == 1:
                await response.aread()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.fixture
async def flaky(settings: Settings) -> AsyncIterator[LosesTheFirstAnswer]:
    async with LifespanManager(create_profile(settings)) as manager:
        yield LosesTheFirstAnswer(httpx.ASGITransport(app=manager.app))


def caller(settings: Settings) -> Caller:
    return Caller(Principal(user_id="op-1", role=Role.operator), settings, retries_left=2)


async def teams(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM profile.team"))).scalar_one())


async def test_a_create_whose_answer_was_lost_is_asked_again_with_its_key_and_made_once(
    flaky: LosesTheFirstAnswer, settings: Settings, engine: AsyncEngine
) -> None:
    who = caller(settings)
    async with httpx.AsyncClient(transport=flaky) as http:
        profile = ServiceClient("profile", "http://profile", http, 5.0)
        team = await profile.create(who, "/teams", TEAM)
    assert team["id"] == "T9"
    assert len(flaky.posts) == 2 and flaky.posts[0] is not None
    assert flaky.posts[0] == flaky.posts[1]  # one key for the call and its retry
    assert who.calls == {"profile": 2} and who.retries_left == 1
    assert await teams(engine) == 1


async def test_each_create_call_has_a_key_of_its_own(
    flaky: LosesTheFirstAnswer, settings: Settings
) -> None:
    async with httpx.AsyncClient(transport=flaky) as http:
        profile = ServiceClient("profile", "http://profile", http, 5.0)
        await profile.create(caller(settings), "/teams", TEAM)
        await profile.create(caller(settings), "/teams", {**TEAM, "id": "T10"})
    assert len(set(flaky.posts)) == 2  # the retry shares the first call's key, not the next


async def test_a_write_that_is_not_a_create_is_never_retried(
    flaky: LosesTheFirstAnswer, settings: Settings, engine: AsyncEngine
) -> None:
    who = caller(settings)
    async with httpx.AsyncClient(transport=flaky) as http:
        profile = ServiceClient("profile", "http://profile", http, 5.0)
        with pytest.raises(ServiceUnavailable):
            await profile.post(who, "/teams", TEAM)
    assert flaky.posts == [None] and who.retries_left == 2
    assert await teams(engine) == 1  # it happened; the gateway cannot know, so it says so
