"""The care service's part of the demo's first days, through its own functions.

Today's automatic care is planned as the hourly job plans it; one campaign is left in draft
for the user to preview and approve; one regional alert is posted and goes out through the
dispatch and the SMS sandbox, so a completed campaign with delivery figures is there to
look at. An urgent alert passes quiet hours, so it completes whatever the hour.
"""

from __future__ import annotations

from services.care import automatic, service
from services.care.config import get_care_settings
from services.care.schemas import AlertCreate, Audience, CampaignCreate
from services.kit import clock
from services.kit.app import Resources
from services.kit.auth import Principal, Role

DEMO_ADMIN = Principal(user_id="demo-admin", role=Role.admin)
DEMO_OPERATOR = Principal(user_id="demo-operator", role=Role.operator)

DRAFT = CampaignCreate(
    name="冬季关怀：钻卡金卡客户",
    template="{honorific}，天气转凉，{manager_name}提醒您注意保暖。如需帮助请随时联系我。",
    audience=Audience(tiers=["diamond", "gold"]),
    occasion="winter_care",
)


async def plan_today(resources: Resources) -> dict[str, int]:
    async with resources.session() as session:
        result = await automatic.plan_day(session, clock.today(), get_care_settings())
    return {"care_campaigns_planned": result.campaigns_created, "care_tasks": result.tasks_created}


async def draft_campaign(resources: Resources) -> str:
    async with resources.session() as session:
        campaign = await service.create_campaign(session, DRAFT, DEMO_ADMIN)
    return str(campaign.id)


async def alert_campaign(resources: Resources, region: str) -> str:
    alert = AlertCreate(
        name=f"寒潮预警（{region}）",
        regions=[region],
        template="{honorific}，气象台发布寒潮预警，未来两天气温骤降，请注意防寒保暖、出行安全。",
        urgent=True,
    )
    async with resources.session() as session:
        campaign = await service.create_alert(session, alert, DEMO_OPERATOR, get_care_settings())
    return str(campaign.id)
