"""HTTP routes of the care service: thin, everything else is in service.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from services.care import access, automatic, repository, service
from services.care.config import CareSettings, get_care_settings
from services.care.dispatch import build_provider
from services.care.models import CampaignStatus, RecipientState, Rule, TaskStatus
from services.care.providers.aliyun import RECEIPT_ACK, UPLINK_ACK
from services.care.providers.base import (
    ReceiptAuthenticationError,
    ReceiptFormatError,
    SmsProvider,
)
from services.care.schemas import (
    AlertCreate,
    AudienceList,
    AudienceListRemoval,
    AudienceListResult,
    CampaignCreate,
    CampaignRead,
    CampaignReport,
    CampaignUpdate,
    DispatchHealth,
    MessageRead,
    PlanResult,
    Preview,
    RecipientRead,
    ReplyReceipt,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    SmsReplyRead,
    TaskComplete,
    TaskRead,
)
from services.kit.app import Idempotent, Session, resources
from services.kit.auth import Acting, Principal, Role, require_role
from services.kit.errors import InvalidInput, NotFound, Unauthorized
from services.kit.idempotency import IdempotentRoute
from services.kit.masking import mask_msisdn, sees_numbers
from services.kit.params import MsisdnsQuery
from services.kit.values import normalise_msisdn

# Partners have no business in care: every route below admits staff only (admin always).
router = APIRouter(
    tags=["campaigns"],
    dependencies=[Depends(require_role(Role.manager, Role.supervisor, Role.operator))],
    route_class=IdempotentRoute,
)

Author = Annotated[Principal, Depends(require_role(Role.manager, Role.supervisor))]
Supervisor = Annotated[Principal, Depends(require_role(Role.supervisor))]
Controller = Annotated[Principal, Depends(require_role(Role.supervisor, Role.operator))]


class PauseBody(BaseModel):
    reason: str | None = None


@router.post(
    "/campaigns",
    status_code=201,
    summary="Create a campaign (draft)",
    dependencies=[Idempotent],
)
async def create_campaign(body: CampaignCreate, session: Session, actor: Author) -> CampaignRead:
    return CampaignRead.model_validate(await service.create_campaign(session, body, actor))


@router.get("/campaigns", summary="Campaigns, newest first")
async def list_campaigns(
    session: Session,
    actor: Acting,
    status: CampaignStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[CampaignRead]:
    team = access.scope_of(actor).team_id
    found = await repository.list_campaigns(session, status, limit, offset, team)
    return [CampaignRead.model_validate(c) for c in found]


@router.get("/campaigns/{campaign_id}", summary="One campaign")
async def get_campaign(campaign_id: uuid.UUID, session: Session, actor: Acting) -> CampaignRead:
    return CampaignRead.model_validate(await service.authorize(session, campaign_id, actor))


@router.patch("/campaigns/{campaign_id}", summary="Edit a draft (back to draft)")
async def update_campaign(
    campaign_id: uuid.UUID, body: CampaignUpdate, session: Session, actor: Author
) -> CampaignRead:
    await service.authorize(session, campaign_id, actor, "change")
    return CampaignRead.model_validate(await service.update_campaign(session, campaign_id, body))


@router.post(
    "/campaigns/{campaign_id}/audience-list",
    summary="Add numbers to a list campaign's audience",
    description='Only for a campaign created with `audience: {"source": "list"}`: a '
    "filter campaign answers 409 `audience_conflict` rather than dropping its filter. "
    "Numbers are normalised as profile does; entries that are not mobile numbers come back "
    "in `rejected` (position and reason) and the rest are added. Back to draft.",
    dependencies=[Idempotent],
)
async def upload_list(
    campaign_id: uuid.UUID, body: AudienceList, session: Session, actor: Author
) -> AudienceListResult:
    await service.authorize(session, campaign_id, actor, "change")
    return await service.add_to_list(session, campaign_id, body.msisdns)


@router.delete(
    "/campaigns/{campaign_id}/audience-list/{msisdn}",
    summary="Take one number off a list campaign's audience",
)
async def remove_from_list(
    campaign_id: uuid.UUID, msisdn: str, session: Session, actor: Author
) -> AudienceListRemoval:
    await service.authorize(session, campaign_id, actor, "change")
    return await service.remove_from_list(session, campaign_id, msisdn)


@router.delete("/campaigns/{campaign_id}/audience-list", summary="Empty a list campaign's audience")
async def clear_list(
    campaign_id: uuid.UUID, session: Session, actor: Author
) -> AudienceListRemoval:
    await service.authorize(session, campaign_id, actor, "change")
    return await service.remove_from_list(session, campaign_id, None)


@router.post("/campaigns/{campaign_id}/preview", summary="Audience, samples and suppressions")
async def preview(campaign_id: uuid.UUID, session: Session, actor: Author) -> Preview:
    await service.authorize(session, campaign_id, actor, "change")
    return await service.preview(session, campaign_id, get_care_settings())


@router.post("/campaigns/{campaign_id}/approve", summary="Approve a previewed campaign")
async def approve(campaign_id: uuid.UUID, session: Session, actor: Supervisor) -> CampaignRead:
    await service.authorize(session, campaign_id, actor, "approve")
    campaign = await service.approve(session, campaign_id, actor, get_care_settings())
    return CampaignRead.model_validate(campaign)


@router.post("/campaigns/{campaign_id}/pause", summary="Pause sending")
async def pause(
    campaign_id: uuid.UUID, session: Session, actor: Controller, body: PauseBody | None = None
) -> CampaignRead:
    await service.authorize(session, campaign_id, actor, "change")
    campaign = await service.pause(session, campaign_id, body.reason if body else None)
    return CampaignRead.model_validate(campaign)


@router.post("/campaigns/{campaign_id}/resume", summary="Continue where it stopped")
async def resume(campaign_id: uuid.UUID, session: Session, actor: Controller) -> CampaignRead:
    await service.authorize(session, campaign_id, actor, "change")
    campaign = await service.resume(session, campaign_id, get_care_settings())
    return CampaignRead.model_validate(campaign)


@router.post("/campaigns/{campaign_id}/cancel", summary="Cancel; nothing more is sent")
async def cancel(campaign_id: uuid.UUID, session: Session, actor: Controller) -> CampaignRead:
    await service.authorize(session, campaign_id, actor, "change")
    return CampaignRead.model_validate(await service.cancel(session, campaign_id))


@router.get("/campaigns/{campaign_id}/report", summary="Delivery, suppression and reach")
async def report(campaign_id: uuid.UUID, session: Session, actor: Acting) -> CampaignReport:
    await service.authorize(session, campaign_id, actor)
    return await service.report(session, campaign_id)


@router.get("/campaigns/{campaign_id}/recipients", summary="Recipients and their state")
async def recipients(
    campaign_id: uuid.UUID,
    session: Session,
    actor: Acting,
    state: RecipientState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RecipientRead]:
    """Only the caller's team's customers among them (everyone for operators)."""
    await service.authorize(session, campaign_id, actor)
    team = access.scope_of(actor).team_id
    found = await repository.list_recipients(session, campaign_id, state, limit, offset, team)
    return [RecipientRead.model_validate(r) for r in found]


@router.get("/dispatch", summary="Campaigns meant to be sending: backlog and stalls")
async def dispatch_health(session: Session, actor: Controller) -> DispatchHealth:
    return await service.dispatch_health(session, get_care_settings(), actor)


@router.post(
    "/alerts",
    status_code=201,
    summary="Broadcast an alert to regions now",
    dependencies=[Idempotent],
)
async def post_alert(body: AlertCreate, session: Session, actor: Controller) -> CampaignRead:
    campaign = await service.create_alert(session, body, actor, get_care_settings())
    return CampaignRead.model_validate(campaign)


@router.post(
    "/rules",
    status_code=201,
    summary="Add an automatic-care rule",
    tags=["automatic"],
    dependencies=[Idempotent],
)
async def create_rule(body: RuleCreate, session: Session, _: Supervisor) -> RuleRead:
    rule = await automatic.create_rule(session, body)
    return RuleRead.model_validate(rule)


@router.get("/rules", summary="Automatic-care rules", tags=["automatic"])
async def list_rules(session: Session, _: Acting, include_inactive: bool = False) -> list[RuleRead]:
    rules: list[Rule] = await repository.rules(session, include_inactive)
    return [RuleRead.model_validate(r) for r in rules]


@router.patch(
    "/rules/{rule_id}",
    summary="Change or deactivate a rule (from the next planning on)",
    tags=["automatic"],
)
async def update_rule(
    rule_id: uuid.UUID, body: RuleUpdate, session: Session, _: Supervisor
) -> RuleRead:
    return RuleRead.model_validate(await automatic.update_rule(session, rule_id, body))


@router.post("/plan/{day}", summary="Plan automatic care for a day now", tags=["automatic"])
async def plan_day(
    day: Annotated[date, Path(description="a Beijing business date, e.g. 2026-12-02")],
    session: Session,
    _: Supervisor,
) -> PlanResult:
    return await automatic.plan_day(session, day, get_care_settings())


@router.get(
    "/tasks",
    summary="Care tasks of the caller's team's customers (admin and operator: all)",
    tags=["tasks"],
    description="Managers and supervisors see the tasks of their team's customers (a "
    "manager closes only their own); `manager_id` narrows to one manager's. Filters "
    "combine. `msisdn` is repeatable: the batched read of up to 100 customers' tasks (the "
    "gateway's loader); `limit` caps the whole answer.",
)
async def tasks(
    session: Session,
    actor: Acting,
    status: TaskStatus = TaskStatus.open,
    manager_id: str | None = None,
    due_by: date | None = None,
    msisdn: MsisdnsQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TaskRead]:
    team = access.scope_of(actor).team_id
    found = await repository.list_tasks(
        session, status, manager_id, due_by, limit, offset, team, msisdn
    )
    return [_shown(TaskRead.model_validate(t), actor) for t in found]


@router.get(
    "/messages",
    summary="Care messages of several customers, newest first",
    tags=["campaigns"],
    description="The batched read of up to 100 customers' care messages (the gateway's "
    "loader): their recipient rows across campaigns and automatic care, each with its "
    "campaign's id and name, state, text, due, sent and delivered times, newest first (by "
    "sent time, else due time). Scoped as campaign recipients are: a manager or supervisor "
    "sees the rows of their team's and the company-wide campaigns, for their team's "
    "customers only; admin and operator all; partners none (403). `limit` caps the whole "
    "answer.",
)
async def messages(
    session: Session,
    actor: Acting,
    msisdn: MsisdnsQuery = None,
    state: Annotated[
        list[RecipientState] | None, Query(description="repeatable; absent: every state")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessageRead]:
    if msisdn is None:
        raise InvalidInput("msisdn：必填，可重复（?msisdn=A&msisdn=B）", field="msisdn")
    team = access.scope_of(actor).team_id
    found = await repository.messages_of(session, msisdn, state, limit, team)
    return [
        _shown(
            MessageRead.model_validate({**r.model_dump(), "campaign_name": name}),
            actor,
        )
        for r, name in found
    ]


@router.get(
    "/sms/replies",
    summary="A customer's replies to our SMS, newest first",
    tags=["replies"],
    description="What the customer answered (through the provider's uplink push): each "
    "reply once, with the opt-out keyword it is, if any, and when the customer copy first "
    "showed profile's opt-out (`settled_at`). A manager or supervisor sees only their "
    "team's customers' replies.",
)
async def replies(session: Session, actor: Acting, msisdn: str) -> list[SmsReplyRead]:
    try:
        number = normalise_msisdn(msisdn)
    except ValueError as exc:
        raise InvalidInput(f"msisdn：{exc}", field="msisdn") from None
    team = access.scope_of(actor).team_id
    if team is not None and await repository.customer_team(session, number) != team:
        return []
    found = await repository.replies_of(session, number)
    return [_shown(SmsReplyRead.model_validate(r), actor) for r in found]


Read = TypeVar("Read", TaskRead, MessageRead, SmsReplyRead)


def _shown(read: Read, actor: Principal) -> Read:
    """The number as the caller may see it (care admits no partner today: kept in full)."""
    if not sees_numbers(actor):
        read.msisdn = mask_msisdn(read.msisdn)
    return read


@router.post(
    "/tasks/{task_id}/complete",
    summary="Record the outcome of a call or visit task; logged as a contact",
    tags=["tasks"],
)
async def complete_task(
    task_id: int, body: TaskComplete, session: Session, actor: Author
) -> TaskRead:
    return TaskRead.model_validate(await service.complete_task(session, task_id, body, actor))


# Called by the SMS provider, not by our services: authenticated by the provider's own
# mechanism (a shared token in the callback URL), so it is mounted without the JWT check.
receipts_router = APIRouter(tags=["receipts"])


def _pushing(provider: str, request: Request) -> tuple[CareSettings, SmsProvider]:
    """The provider that pushes to us here, as configured (Aliyun only when it is)."""
    care = get_care_settings().model_copy(update={"sms_provider": provider})
    if provider == "aliyun" and not (care.aliyun_access_key_id and care.aliyun_sign_name):
        raise NotFound("本服务未配置阿里云短信", field="provider")
    return care, build_provider(care, resources(request).http)


@contextmanager
def _push_errors() -> Iterator[None]:
    """A push we cannot authenticate is 401, one we cannot read 422 (the provider retries)."""
    try:
        yield
    except ReceiptAuthenticationError as exc:
        raise Unauthorized(str(exc)) from exc
    except ReceiptFormatError as exc:
        raise InvalidInput(str(exc), field="body") from exc


@receipts_router.post("/sms/receipts/{provider}", summary="Delivery receipts from a provider")
async def receipts(
    provider: Literal["sandbox", "aliyun"], request: Request, session: Session
) -> dict[str, Any]:
    _, parser = _pushing(provider, request)
    with _push_errors():
        parsed = parser.parse_receipts(
            dict(request.headers), await request.body(), dict(request.query_params)
        )
    applied = await service.apply_receipts(session, parsed)
    if provider == "aliyun":
        return dict(RECEIPT_ACK)
    return {"received": len(parsed), "applied": applied}


@receipts_router.post(
    "/sms/uplinks/{provider}",
    summary="Customers' replies (uplinks) from a provider",
    description="Aliyun's SmsUp HTTP batch push (or the sandbox's, in the same shape): a "
    "JSON array of `phone_number`, `content`, `send_time`, `dest_code`, `sequence_id`, "
    "authenticated by `?token=` (`CARE_UPLINK_TOKEN`, else the receipt token). Each reply "
    "is recorded once by `sequence_id`; one that is an opt-out keyword (R, TD, 退订...) "
    "stops every later SMS to the number at once and publishes `care.opt_out_requested`; "
    "a score 1-5 after a complaint's follow-up publishes `care.satisfaction_replied`. "
    'Aliyun gets the body it expects, `{"code": 0, "msg": "接收成功"}`, once it is '
    "committed; any failure answers 5xx, and Aliyun pushes again.",
)
async def uplinks(
    provider: Literal["sandbox", "aliyun"], request: Request, session: Session
) -> dict[str, Any]:
    care, parser = _pushing(provider, request)
    with _push_errors():
        parsed = parser.parse_uplinks(
            dict(request.headers), await request.body(), dict(request.query_params)
        )
    result: ReplyReceipt = await service.receive_replies(session, provider, parsed, care.keywords)
    if provider == "aliyun":
        return dict(UPLINK_ACK)
    return result.model_dump()
