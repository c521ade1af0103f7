"""Campaign rules: lifecycle, preview, approval, alerts, receipts and reports.

Lifecycle: draft -> preview -> approved -> dispatching -> completed, with pause, resume and
cancel along the way. Approval writes the recipients (the audience as of that moment);
sending re-checks every rule per recipient at the moment it goes out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.care import access, optout, repository
from services.care.config import CareSettings, get_care_settings
from services.care.contract import (
    MessageDelivered,
    OptOutRequested,
    SatisfactionReplied,
    TaskCompleted,
)
from services.care.dispatch import nudge
from services.care.exceptions import (
    AudienceConflict,
    CampaignNotFound,
    InvalidTransition,
    NotOnList,
    NotYourTask,
    TaskNotFound,
)
from services.care.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Category,
    Task,
    TaskStatus,
)
from services.care.providers.base import DeliveryReceipt, InboundSms
from services.care.rendering import BUILTINS, MissingValues, placeholders, repeated_surname
from services.care.schemas import (
    AlertCreate,
    Audience,
    AudienceListRemoval,
    AudienceListResult,
    CampaignCreate,
    CampaignReport,
    CampaignUpdate,
    DispatchHealth,
    DispatchRow,
    ListEntryError,
    Preview,
    ReplyReceipt,
    SampleRendering,
    TaskComplete,
)
from services.care.suppression import message_text, policy_for
from services.kit import clock
from services.kit.auth import Principal
from services.kit.clock import BEIJING
from services.kit.db import after_commit
from services.kit.events.publish import publish, publish_many
from services.kit.values import normalise_msisdn
from services.profile.contract import ContactLogEntry

logger = logging.getLogger("keepwell.care.service")

EDITABLE = (CampaignStatus.draft, CampaignStatus.preview)
SAMPLE_SIZE = 5


async def get_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, lock: bool = True
) -> Campaign:
    campaign = await repository.get_campaign(session, campaign_id, for_update=lock)
    if campaign is None:
        raise CampaignNotFound(f"找不到关怀活动 {campaign_id}", field="campaign_id")
    return campaign


async def authorize(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    principal: Principal,
    action: Literal["read", "change", "approve"] = "read",
) -> Campaign:
    """The campaign if ``principal`` may do ``action`` to it. Another team's campaign is not
    found, not forbidden: its existence is not the caller's to know."""
    campaign = await repository.get_campaign(session, campaign_id, for_update=False)
    if campaign is None or not access.can_read(principal, campaign):
        raise CampaignNotFound(f"找不到关怀活动 {campaign_id}", field="campaign_id")
    if action == "change":
        access.check_change(principal, campaign)
    elif action == "approve":
        access.check_approve(principal, campaign)
    return campaign


def _audience(audience: Audience) -> dict[str, Any]:
    return audience.model_dump(mode="json", exclude_defaults=True) | {"source": audience.source}


def _refuse(campaign: Campaign, action: str) -> InvalidTransition:
    return InvalidTransition(f"活动当前状态为 {campaign.status}，不能{action}", field="status")


async def create_campaign(
    session: AsyncSession, data: CampaignCreate, actor: Principal
) -> Campaign:
    placeholders(data.template)
    campaign = Campaign(
        **data.model_dump(exclude={"audience"}),
        audience=_audience(data.audience),
        kind=CampaignKind.manual,
        status=CampaignStatus.draft,
        created_by=actor.user_id,
        team_id=access.team_of_new_campaign(actor),
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def update_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, data: CampaignUpdate
) -> Campaign:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status not in EDITABLE:
        raise _refuse(campaign, "修改")
    changes = data.model_dump(exclude_unset=True, exclude={"audience"})
    if "template" in changes:
        placeholders(changes["template"])
    for key, value in changes.items():
        setattr(campaign, key, value)
    if data.audience is not None:
        campaign.audience = _audience(data.audience)
    # Anything previewed no longer describes the campaign.
    campaign.status = CampaignStatus.draft
    campaign.updated_at = clock.now()
    await session.flush()
    return campaign


async def _list_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status not in EDITABLE:
        raise _refuse(campaign, "修改名单")
    if campaign.audience.get("source") != "list":
        criteria = {k: v for k, v in campaign.audience.items() if k != "source"}
        shown = "；".join(
            f"{k}={'、'.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in criteria.items()
        )
        shown = shown or "全部在册客户"
        raise AudienceConflict(
            f"活动受众为筛选条件（{shown}），不能上传名单；如需按名单发送，请先将受众改为 "
            '{"source": "list"}',
            field="audience",
        )
    return campaign


async def add_to_list(
    session: AsyncSession, campaign_id: uuid.UUID, msisdns: list[str]
) -> AudienceListResult:
    """Add numbers to a list campaign's audience, normalised as profile normalises them;
    what is not a mobile number is reported per entry and left out."""
    campaign = await _list_campaign(session, campaign_id)
    rejected: list[ListEntryError] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    clean: list[str] = []
    for position, raw in enumerate(msisdns, 1):
        try:
            number = normalise_msisdn(raw)
        except ValueError as exc:
            rejected.append(ListEntryError(position=position, value=raw, reason=str(exc)))
            continue
        if number in seen:
            duplicates.append(number)
            continue
        seen.add(number)
        clean.append(number)
    added = await repository.add_list_members(session, campaign.id, sorted(clean))
    new = set(added)
    duplicates += [m for m in clean if m not in new]
    campaign.status = CampaignStatus.draft
    campaign.updated_at = clock.now()
    return AudienceListResult(
        added=len(new),
        duplicates=sorted(set(duplicates)),
        not_customers=await repository.unknown_customers(session, sorted(new)),
        rejected=rejected,
        list_size=await repository.list_size(session, campaign.id),
    )


async def remove_from_list(
    session: AsyncSession, campaign_id: uuid.UUID, msisdn: str | None
) -> AudienceListRemoval:
    """Take one number (any usual form) off a list campaign's audience, or all with None."""
    campaign = await _list_campaign(session, campaign_id)
    number = None
    if msisdn is not None:
        try:
            number = normalise_msisdn(msisdn)
        except ValueError as exc:
            raise NotOnList(f"名单中没有 {msisdn}：{exc}", field="msisdn") from None
    removed = await repository.remove_list_members(session, campaign.id, number)
    if number is not None and not removed:
        raise NotOnList(f"名单中没有 {number}", field="msisdn")
    campaign.status = CampaignStatus.draft
    campaign.updated_at = clock.now()
    return AudienceListRemoval(
        removed=removed, list_size=await repository.list_size(session, campaign.id)
    )


def _missing_conditions(names: list[str]) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions (over customer ``c``) true when a placeholder would have no value."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name == "honorific":
            continue
        if name in ("name", "surname"):
            conditions.append("coalesce(btrim(c.name), '') = ''")
        elif name == "manager_name":
            conditions.append("coalesce(btrim(c.manager_name), '') = ''")
        elif name in BUILTINS:
            conditions.append(
                f"coalesce(btrim(c.{name}), '') = '' AND coalesce(c.custom->>'{name}', '') = ''"
            )
        else:
            params[f"p{i}"] = name
            conditions.append(f"coalesce(btrim(c.custom->>:p{i}), '') = ''")
    return conditions, params


async def preview(session: AsyncSession, campaign_id: uuid.UUID, care: CareSettings) -> Preview:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status not in EDITABLE:
        raise _refuse(campaign, "预览")
    names = placeholders(campaign.template)
    conditions, params = _missing_conditions(names)
    policy = policy_for(campaign, care)
    split = await repository.forecast(
        session,
        campaign,
        policy,
        care.frequency_window_days,
        conditions,
        params,
        clock.now(),
    )
    samples: list[SampleRendering] = []
    warnings: list[str] = []
    # Aliyun puts the account's 【signature】 in front of every text, and it counts.
    sign = care.aliyun_sign_name if care.sms_provider == "aliyun" else ""
    for row in await repository.audience_sample(session, campaign, SAMPLE_SIZE):
        if row.get("msisdn") is None:
            samples.append(SampleRendering(msisdn=row["target"], text=None, error="不是在册客户"))
            continue
        try:
            rendered = message_text(campaign.template, row, policy)
        except MissingValues as exc:
            samples.append(
                SampleRendering(msisdn=row["target"], text=None, error=f"缺少取值：{exc}")
            )
            continue
        samples.append(
            SampleRendering(
                msisdn=row["target"],
                text=rendered,
                length=optout.length(rendered, sign),
                segments=optout.segments(rendered, sign),
            )
        )
        twice = repeated_surname(rendered, row)
        if twice and not warnings:
            warnings.append(
                f"姓氏重复：样例读作「{twice}」。{{honorific}} 已含姓氏（如 王先生），"
                "请只用 {honorific}，或用 {name} 加其他称呼"
            )
    campaign.status = CampaignStatus.preview
    campaign.updated_at = clock.now()
    suppressed = {k: v for k, v in split.items() if k not in ("ok", "held", "control")}
    return Preview(
        audience=sum(split.values()),
        control_group=split.get("control", 0),
        suppressed=suppressed,
        will_send=split.get("ok", 0) + split.get("held", 0),
        held_for_quiet_hours=split.get("held", 0),
        samples=samples,
        render_errors=split.get("render_error", 0),
        placeholders=names,
        warnings=warnings,
    )


async def approve(
    session: AsyncSession, campaign_id: uuid.UUID, actor: Principal, care: CareSettings
) -> Campaign:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status is CampaignStatus.draft:
        raise InvalidTransition(
            "活动须先预览（查看受众人数、样例与屏蔽情况）再审批", field="status"
        )
    if campaign.status is not CampaignStatus.preview:
        raise _refuse(campaign, "审批")
    campaign.approved_by = actor.user_id
    campaign.approved_at = clock.now()
    await _start(session, campaign, care)
    return campaign


async def _start(session: AsyncSession, campaign: Campaign, care: CareSettings) -> None:
    """Write the recipients and begin dispatching, now or at the scheduled time."""
    now = clock.now()
    await repository.materialise(session, campaign, now, care.cap_exempt_categories)
    if campaign.send_at is None or (campaign.send_at <= now and not campaign.local_time):
        campaign.status = CampaignStatus.dispatching
        _nudge_after_commit(session, campaign.id, care.dispatch_concurrency)
    else:
        # The re-driver moves it to dispatching when its first recipient is due.
        campaign.status = CampaignStatus.approved
    campaign.updated_at = clock.now()
    await session.flush()


def _nudge_after_commit(session: AsyncSession, campaign_id: uuid.UUID, jobs: int) -> None:
    redis = session.info.get("redis")
    if redis is not None:
        after_commit(session, lambda: nudge(redis, campaign_id, jobs))


async def pause(session: AsyncSession, campaign_id: uuid.UUID, reason: str | None) -> Campaign:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status not in (CampaignStatus.approved, CampaignStatus.dispatching):
        raise _refuse(campaign, "暂停")
    campaign.status = CampaignStatus.paused
    campaign.pause_reason = reason or "人工暂停"
    campaign.updated_at = clock.now()
    return campaign


async def resume(session: AsyncSession, campaign_id: uuid.UUID, care: CareSettings) -> Campaign:
    """Carry on from where it stopped: only recipients still queued or held are sent."""
    campaign = await get_campaign(session, campaign_id)
    if campaign.status is not CampaignStatus.paused:
        raise _refuse(campaign, "恢复")
    campaign.pause_reason = None
    campaign.updated_at = clock.now()
    if await repository.not_yet_due(session, campaign.id):
        # Paused before its send time: scheduled again; the re-driver starts it when due.
        campaign.status = CampaignStatus.approved
    else:
        campaign.status = CampaignStatus.dispatching
        _nudge_after_commit(session, campaign.id, care.dispatch_concurrency)
    return campaign


async def cancel(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign:
    campaign = await get_campaign(session, campaign_id)
    if campaign.status in (CampaignStatus.completed, CampaignStatus.cancelled):
        raise _refuse(campaign, "取消")
    campaign.status = CampaignStatus.cancelled
    campaign.updated_at = clock.now()
    await repository.cancel_open_recipients(session, campaign.id)
    return campaign


async def create_alert(
    session: AsyncSession, data: AlertCreate, actor: Principal, care: CareSettings
) -> Campaign:
    """A weather/flu/traffic alert for regions: approved by whoever posts it (an operator or
    supervisor), fanned out to every active customer there at once."""
    placeholders(data.template)
    campaign = Campaign(
        name=data.name,
        kind=CampaignKind.alert,
        category=Category.alert,
        template=data.template,
        urgent=data.urgent,
        audience={"source": "filter", "regions": data.regions},
        status=CampaignStatus.approved,
        created_by=actor.user_id,
        team_id=access.team_of_new_campaign(actor),
        approved_by=actor.user_id,
        approved_at=clock.now(),
    )
    session.add(campaign)
    await session.flush()
    await _start(session, campaign, care)
    return campaign


async def report(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignReport:
    campaign = await get_campaign(session, campaign_id, lock=False)
    states = await repository.state_counts(session, campaign.id)
    delivered = states.get("delivered", 0)
    failed = states.get("failed", 0)
    attempted = delivered + failed + states.get("sent", 0)
    eligible = sum(states.values()) - states.get("control", 0)
    return CampaignReport(
        campaign_id=campaign.id,
        status=campaign.status,
        recipients=sum(states.values()),
        states=states,
        suppressed=await repository.reason_counts(session, campaign.id),
        attempted=attempted,
        delivery_rate=round(delivered / attempted, 4) if attempted else None,
        failure_rate=round(failed / attempted, 4) if attempted else None,
        audience_delivered_rate=round(delivered / eligible, 4) if eligible else None,
    )


async def dispatch_health(
    session: AsyncSession, care: CareSettings, principal: Principal
) -> DispatchHealth:
    """What on-call needs to see at a glance: every campaign meant to be sending, its
    backlog, and whether it is moving (a supervisor: their team's and company-wide ones)."""
    team = access.scope_of(principal).team_id
    rows = [
        r
        for r in await repository.dispatch_rows(session, 2 * care.stall_seconds)
        if team is None or r["team_id"] in (None, team)
    ]
    return DispatchHealth(
        provider=care.sms_provider,
        rate_per_second=care.rate_per_second,
        campaigns=[DispatchRow.model_validate(r) for r in rows],
    )


async def apply_receipts(session: AsyncSession, receipts: list[DeliveryReceipt]) -> int:
    """Record receipts once each; every delivery is published for the contact log."""
    now = clock.now()
    changed = await repository.apply_receipts(
        session,
        [
            (r.out_id, r.provider_message_id, r.delivered, r.error_code, r.reported_at or now)
            for r in receipts
        ],
    )
    await publish_many(
        session,
        [
            (
                MessageDelivered(
                    campaign_id=row["campaign_id"],
                    recipient_id=row["id"],
                    contact=ContactLogEntry(
                        msisdn=row["msisdn"],
                        channel="sms",
                        direction="outbound",
                        at=row["delivered_at"],
                        by="care",
                        outcome="delivered",
                        note=row["text"],
                        source="care",
                        source_ref=f"recipient:{row['id']}",
                    ),
                ),
                row["msisdn"],
            )
            for row in changed
            if row["state"] == "delivered"
        ],
        actor="care",
    )
    return len(changed)


# ---- customers' replies (uplinks) -----------------------------------------------------


async def receive_replies(
    session: AsyncSession, provider: str, replies: list[InboundSms], keywords: frozenset[str]
) -> ReplyReceipt:
    """Record each reply once (by the provider's id: a re-push changes nothing). A reply that
    is an opt-out keyword turns away every later send to the number from this transaction
    on, and ``care.opt_out_requested`` asks profile to record the opt-out in the archive."""
    outcome = ReplyReceipt()
    now = clock.now()
    for reply in replies:
        try:
            msisdn = normalise_msisdn(reply.phone)
        except ValueError:
            logger.warning("reply from %r is not a mainland mobile number; ignored", reply.phone)
            outcome.ignored += 1
            continue
        keyword = optout.keyword_of(reply.content, keywords)
        # Profile's opt-out already in the copy: its flag decides from now on, and profile,
        # finding nothing to change, will publish nothing that could settle the reply later.
        settled = now if keyword and await repository.copy_opted_out(session, msisdn) else None
        added = await repository.add_reply(
            session,
            {
                "provider": provider,
                "provider_ref": reply.provider_ref,
                "msisdn": msisdn,
                "content": reply.content,
                "opt_out_keyword": keyword,
                "dest_code": reply.dest_code,
                "sign_name": reply.sign_name,
                "sent_at": reply.sent_at,
                "received_at": now,
                "settled_at": settled,
            },
        )
        if added is None:
            outcome.duplicates += 1
            continue
        outcome.received += 1
        if keyword is None:
            outcome.satisfaction += await _answer_follow_up(session, provider, reply, msisdn, now)
            continue
        outcome.opt_outs += 1
        await publish(
            session,
            OptOutRequested(
                msisdn=msisdn,
                keyword=keyword,
                content=reply.content,
                received_at=now,
                provider=provider,
                reply_id=reply.provider_ref,
            ),
            aggregate_id=msisdn,
            actor="care",
        )
    return outcome


def score_of(reply: str) -> int | None:
    """The satisfaction score a reply is (the follow-up asks for 1-5): "5", "５", "4分"."""
    word = optout.normalise(reply).removesuffix("分")
    return int(word) if len(word) == 1 and word in "12345" else None


async def _answer_follow_up(
    session: AsyncSession, provider: str, reply: InboundSms, msisdn: str, now: datetime
) -> int:
    """A score replied after a complaint's follow-up reached the customer: tell complaint."""
    score = score_of(reply.content)
    if score is None:
        return 0
    since = now - timedelta(days=get_care_settings().complaint_satisfaction_reply_days)
    complaint_id = await repository.follow_up_answered(session, msisdn, since)
    if complaint_id is None:
        return 0
    await publish(
        session,
        SatisfactionReplied(
            msisdn=msisdn,
            complaint_id=complaint_id,
            satisfaction=score,
            content=reply.content,
            received_at=now,
            provider=provider,
            reply_id=reply.provider_ref,
        ),
        aggregate_id=complaint_id,
        actor="care",
    )
    return 1


# ---- manager tasks --------------------------------------------------------------------


async def complete_task(
    session: AsyncSession, task_id: int, data: TaskComplete, actor: Principal
) -> Task:
    """Close a call or visit task with its outcome, and log the contact in the customer's
    archive. A manager closes only their own tasks; a supervisor their team's."""
    task = await repository.get_task(session, task_id)
    scope = access.scope_of(actor)
    if task is None or (
        scope.team_id is not None
        and (await repository.customer_team(session, task.msisdn)) != scope.team_id
    ):
        raise TaskNotFound(f"找不到关怀任务 {task_id}", field="task_id")
    if scope.manager_id is not None and task.manager_id != scope.manager_id:
        raise NotYourTask("只能完成分配给自己的关怀任务", field="task_id")
    if task.status is TaskStatus.done and task.completed_at is not None:
        raise InvalidTransition(
            f"任务已于 {task.completed_at.astimezone(BEIJING):%Y-%m-%d %H:%M} "
            f"由 {task.completed_by} 完成",
            field="status",
        )
    if task.status is TaskStatus.cancelled:
        raise InvalidTransition(f"任务已取消：{task.outcome_note}", field="status")
    now = clock.now()
    task.status = TaskStatus.done
    task.completed_at = now
    task.completed_by = actor.user_id
    task.channel = str(data.channel)
    task.outcome = data.outcome
    task.outcome_note = data.note
    await session.flush()
    await publish(
        session,
        TaskCompleted(
            task_id=task_id,
            kind=str(task.kind),
            contact=ContactLogEntry(
                msisdn=task.msisdn,
                channel=str(data.channel),
                direction="outbound",
                at=now,
                by=actor.user_id,
                outcome=data.outcome,
                note=data.note,
                source="care",
                source_ref=f"task:{task_id}",
            ),
        ),
        aggregate_id=task.msisdn,
        actor=actor.user_id,
    )
    return task
