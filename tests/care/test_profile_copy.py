"""The care copy of profile's customers, fed end to end by profile's events (outbox, relay,
care's POST /events): the manager's name and the tags come from profile's archive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from care_support import sent_phones, states
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care import repository as care_repository
from services.care.app import create_app as create_care_app
from services.care.dispatch import Dispatcher
from services.care.schemas import Audience
from services.complaint.app import create_app as create_complaint_app
from services.kit import clock
from services.kit.config import Settings
from services.kit.db import create_sessionmaker
from services.kit.events.relay import Relay
from services.kit.testing import serve
from services.profile.app import create_app as create_profile_app
from services.warning.app import create_app as create_warning_app

TEMPLATE = "{honorific}您好，{manager_name}祝您生活愉快。"


@dataclass
class Profile:
    """Profile's API, and its relay delivering to care and warning served over HTTP."""

    api: httpx.AsyncClient
    relay: Relay

    async def post(self, path: str, body: dict[str, Any]) -> None:
        response = await self.api.post(path, json=body)
        assert response.status_code in (200, 201), response.text

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        response = await self.api.patch(path, json=body)
        assert response.status_code == 200, response.text


@pytest.fixture
async def profile(
    settings: Settings, engine: AsyncEngine, token: Callable[..., str]
) -> AsyncIterator[Profile]:
    async with (
        serve(create_profile_app(settings)) as profile_url,
        serve(create_care_app(settings)) as care_url,
        serve(create_warning_app(settings)) as warning_url,
        serve(create_complaint_app(settings)) as complaint_url,
        httpx.AsyncClient(
            base_url=profile_url, headers={"Authorization": f"Bearer {token('admin')}"}
        ) as api,
        httpx.AsyncClient(timeout=10) as http,
    ):
        urls = {"care": care_url, "warning": warning_url, "complaint": complaint_url}
        relay = Relay(
            "profile", create_sessionmaker(engine), http, settings, service_url=urls.__getitem__
        )
        yield Profile(api, relay)


def customer(msisdn: str, name: str, gender: str, manager_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "msisdn": msisdn,
        "name": name,
        "gender": gender,
        "region": "广东",
        "city": "广州",
        "join_date": "2012-03-01",
        "plan_name": "全球通199",
        "plan_fee": "199.00",
        "tier": "gold",
        "manager_id": manager_id,
        **fields,
    }


async def test_a_tagged_campaign_reaches_the_tagged_customers_in_their_managers_current_name(
    profile: Profile,
    engine: AsyncEngine,
    dispatcher: Dispatcher,
    sandbox: httpx.AsyncClient,
    start_campaign: Callable[..., Any],
) -> None:
    await profile.post(
        "/teams",
        {"id": "T1", "name": "广州VIP一组", "region": "广东", "supervisor_name": "周敏"},
    )
    await profile.post(
        "/managers", {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}
    )
    await profile.post(
        "/managers", {"id": "M2", "name": "王磊", "phone": "13900000002", "team_id": "T1"}
    )
    await profile.post(
        "/customers",
        customer("13800000001", "王建国", "male", "M1", tags=["商旅客户", "高端家庭"],
                 interests=["钓鱼"]),
    )  # fmt: skip
    await profile.post(
        "/customers", customer("13800000002", "欧阳芳", "female", "M1", tags=["高端家庭"])
    )
    await profile.post("/customers", customer("13800000003", "张伟", "male", "M2"))
    await profile.post(
        "/customers", customer("13800000004", "陈丽", "female", "M2", tags=["商旅客户"])
    )
    # Her manager is renamed after the copy has her: the next event brings the new name.
    await profile.relay.run()
    await profile.patch("/managers/M2", {"name": "王晓磊"})
    await profile.relay.run()

    async with engine.connect() as conn:
        copy = {
            r.msisdn: (r.manager_name, r.tags, r.interests)
            for r in await conn.execute(
                text("SELECT msisdn, manager_name, tags, interests FROM care.customer")
            )
        }
    assert copy == {
        "13800000001": ("李娜", ["商旅客户", "高端家庭"], ["钓鱼"]),
        "13800000002": ("李娜", ["高端家庭"], []),
        "13800000003": ("王晓磊", [], []),
        "13800000004": ("王晓磊", ["商旅客户"], []),
    }

    campaign_id = await start_campaign(TEMPLATE, audience=Audience(tags=["商旅客户"]))
    assert sorted(await states(engine, campaign_id)) == ["13800000001", "13800000004"]
    assert await dispatcher.run(campaign_id, seconds=30) == "done"
    sent = (await sandbox.get("/messages")).json()
    assert sorted(m["text"] for m in sent) == [
        "王先生您好，李娜祝您生活愉快。拒收请回复R",
        "陈女士您好，王晓磊祝您生活愉快。拒收请回复R",
    ]
    assert sorted(await sent_phones(sandbox)) == ["13800000001", "13800000004"]

    either = await start_campaign(TEMPLATE, audience=Audience(tags=["高端家庭", "商旅客户"]))
    assert sorted(await states(engine, either)) == ["13800000001", "13800000002", "13800000004"]


async def test_a_customer_without_a_manager_is_not_greeted_in_a_name_left_in_custom(
    profile: Profile, engine: AsyncEngine, dispatcher: Dispatcher, start_campaign: Any
) -> None:
    await profile.post(
        "/teams",
        {"id": "T1", "name": "广州VIP一组", "region": "广东", "supervisor_name": "周敏"},
    )
    await profile.post(
        "/managers", {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}
    )
    await profile.post("/customers", customer("13800000001", "王建国", "male", "M1"))
    await profile.post("/managers/M1/leave", {})
    await profile.relay.run()
    async with engine.begin() as conn:
        # What the stop-gap once read: a name in the custom attributes.
        await conn.execute(
            text("""UPDATE care.customer SET custom = '{"manager_name": "李经理"}'""")
        )

    campaign_id = await start_campaign(TEMPLATE)
    assert await dispatcher.run(campaign_id, seconds=30) == "done"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT state, reason FROM care.recipient WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
        ).one()
    assert (row.state, row.reason) == ("suppressed", "render_error")


async def test_churning_or_promoting_through_profiles_api_cancels_tasks_and_welcomes(
    profile: Profile, engine: AsyncEngine
) -> None:
    """A PATCH that churns sends customer.updated and then customer.churned with the same
    snapshot version, and a manual promotion sends customer.updated before
    customer.tier_changed: the side effect follows the event, not a change of the copy."""
    await profile.post(
        "/teams", {"id": "T1", "name": "广州VIP一组", "region": "广东", "supervisor_name": "周敏"}
    )
    await profile.post(
        "/managers", {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}
    )
    await profile.post("/customers", customer("13800000001", "王建国", "male", "M1"))
    await profile.post("/customers", customer("13800000002", "陈丽", "female", "M1", tier="none"))
    await profile.relay.run()
    async with create_sessionmaker(engine)() as session, session.begin():
        await care_repository.add_task(
            session, msisdn="13800000001", manager_id="M1", kind="monthly_call",
            period="2099-01", due_on=clock.today(), note="月度电话回访",
        )  # fmt: skip

    await profile.patch(
        "/customers/13800000001",
        {"status": "churned", "churn_reason": "携号转网", "version": 1},
    )
    await profile.patch("/customers/13800000002", {"tier": "gold", "version": 1})
    await profile.relay.run()

    async with engine.connect() as conn:
        tasks = (
            await conn.execute(text("SELECT msisdn, kind, status FROM care.task ORDER BY msisdn"))
        ).all()
    assert [tuple(t) for t in tasks] == [
        ("13800000001", "monthly_call", "cancelled"),
        ("13800000002", "first_contact", "open"),
    ]
