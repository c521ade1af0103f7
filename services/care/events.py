"""Events the care service publishes, and the profile events it keeps its read model from."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.care import repository
from services.care.automatic import service_message, welcome_new_vip
from services.care.config import get_care_settings
from services.complaint.events import ComplaintClosed, ComplaintOpened
from services.kit.app import Resources
from services.kit.clock import today
from services.kit.config import Settings
from services.kit.events import Envelope, Event
from services.kit.events.consumer import Consumer
from services.profile.client import customer_snapshots
from services.profile.events import (
    ContactLogEntry,
    CustomerChurned,
    CustomerCreated,
    CustomerSnapshot,
    CustomerUpdated,
    ManagerReassigned,
    TierChanged,
)

PRODUCER = "care"
VIP_TIERS = frozenset({"diamond", "gold", "silver"})
NEW_SUBSCRIBER_DAYS = 30
CHURNED_TASK_NOTE = "客户已离网，任务自动取消"


class MessageDelivered(Event):
    """A care SMS reached the customer's handset; profile appends ``contact`` to the log."""

    event_type = "care.message_delivered"
    producer = PRODUCER
    campaign_id: uuid.UUID
    recipient_id: int
    contact: ContactLogEntry


class TaskCompleted(Event):
    """A manager finished a care task (a call or visit); profile appends ``contact``."""

    event_type = "care.task_completed"
    producer = PRODUCER
    task_id: int
    kind: str
    contact: ContactLogEntry


consumer = Consumer(PRODUCER)


def read_model_values(snapshot: CustomerSnapshot) -> dict[str, Any]:
    return {
        "msisdn": snapshot.msisdn,
        "version": snapshot.version,
        "name": snapshot.name,
        "gender": snapshot.gender,
        "honorific": snapshot.honorific,
        "birthday": snapshot.birthday,
        "region": snapshot.region,
        "city": snapshot.city,
        "time_zone": snapshot.time_zone,
        "join_date": snapshot.join_date,
        "status": snapshot.status,
        "tier": snapshot.tier,
        "service_level": snapshot.service_level,
        "lifecycle": snapshot.lifecycle,
        "manager_id": snapshot.manager_id,
        "manager_name": snapshot.manager_name,
        "team_id": snapshot.team_id,
        "balance": snapshot.balance,
        "sms_opt_out": snapshot.sms_opt_out,
        "do_not_disturb": snapshot.do_not_disturb,
        "taboos": snapshot.taboos,
        "tags": snapshot.tags,
        "interests": snapshot.interests,
        "important_dates": snapshot.important_dates,
        "custom": snapshot.custom,
    }


async def _upsert(
    session: AsyncSession, snapshot: CustomerSnapshot, *, refill: bool = False
) -> bool:
    values = read_model_values(snapshot)
    values["balance"] = Decimal(snapshot.balance)
    applied = await repository.upsert_customer(session, values, refill=refill)
    if applied:
        # A customer's open calls and visits go with them to their new manager.
        await repository.move_open_tasks(session, snapshot.msisdn, snapshot.manager_id)
    return applied


@consumer.handles(CustomerCreated)
async def customer_created(session: AsyncSession, event: CustomerCreated, _: Envelope) -> None:
    customer = event.customer
    # Loading an existing customer base creates customers too; only a subscriber who joined
    # recently is a new VIP to welcome.
    recent = customer.join_date >= today() - timedelta(days=NEW_SUBSCRIBER_DAYS)
    if await _upsert(session, customer) and customer.tier in VIP_TIERS and recent:
        await welcome_new_vip(session, customer.msisdn, customer.manager_id)


@consumer.handles(CustomerUpdated)
async def customer_updated(session: AsyncSession, event: CustomerUpdated, _: Envelope) -> None:
    await _upsert(session, event.customer)


@consumer.handles(TierChanged)
async def tier_changed(session: AsyncSession, event: TierChanged, _: Envelope) -> None:
    became_vip = event.old_tier not in VIP_TIERS and event.new_tier in VIP_TIERS
    if await _upsert(session, event.customer) and became_vip:
        await welcome_new_vip(session, event.customer.msisdn, event.customer.manager_id)


@consumer.handles(ManagerReassigned)
async def manager_reassigned(session: AsyncSession, event: ManagerReassigned, _: Envelope) -> None:
    await _upsert(session, event.customer)


@consumer.handles(CustomerChurned)
async def customer_churned(session: AsyncSession, event: CustomerChurned, _: Envelope) -> None:
    # Winning a churned customer back is the warning service's follow-up, not a care call.
    if await _upsert(session, event.customer):
        await repository.cancel_open_tasks(session, event.customer.msisdn, CHURNED_TASK_NOTE)


# Service messages about a customer's complaint (Chinese; {name}{honorific} from the copy).
COMPLAINT_ACK = (
    "{name}{honorific}您好，您的投诉已受理，工单号%s。我们会尽快处理并与您联系，感谢您的耐心。"
)
COMPLAINT_CLOSED = (
    "{name}{honorific}您好，您的投诉（工单号%s）已处理完毕。如仍有问题，请随时联系您的客户经理。"
)
COMPLAINT_FOLLOW_UP = (
    "{name}{honorific}您好，关于工单%s的处理结果，您是否满意？"
    "请回复1-5分（5分为非常满意），感谢您的评价。"
)


@consumer.handles(ComplaintOpened)
async def complaint_opened(session: AsyncSession, event: ComplaintOpened, _: Envelope) -> None:
    """The acknowledgement SMS with the ticket number (a service message)."""
    number = event.number or event.complaint_id
    await service_message(
        session,
        plan_key=f"complaint:{event.complaint_id}:ack",
        name=f"投诉受理 {number}",
        template=COMPLAINT_ACK % number,
        msisdn=event.msisdn,
    )


@consumer.handles(ComplaintClosed)
async def complaint_closed(session: AsyncSession, event: ComplaintClosed, _: Envelope) -> None:
    """The closure SMS now, and the satisfaction follow-up (回访) after the configured delay.
    A complaint closed again after a reopen gets its own messages."""
    round_ = f"{event.complaint_id}:{event.reopened_count}"
    await service_message(
        session,
        plan_key=f"complaint:{round_}:closed",
        name=f"投诉办结 {event.number}",
        template=COMPLAINT_CLOSED % event.number,
        msisdn=event.msisdn,
    )
    delay = timedelta(hours=get_care_settings().complaint_follow_up_hours)
    await service_message(
        session,
        plan_key=f"complaint:{round_}:follow_up",
        name=f"投诉回访 {event.number}",
        template=COMPLAINT_FOLLOW_UP % event.number,
        msisdn=event.msisdn,
        send_at=event.closed_at + delay,
    )


async def rebuild_read_model(settings: Settings, profile_url: str | None = None) -> dict[str, int]:
    """Reload the customer copy from the profile service's API; as with events, only a
    newer snapshot replaces what is held, or one of the same version that differs (after an
    upgrade that added columns to the copy). One transaction per page."""
    resources = Resources.open(PRODUCER, settings)
    fetched = applied = 0
    try:
        async for page in customer_snapshots(
            resources.http, settings, acting_as="system:care", profile_url=profile_url
        ):
            fetched += len(page)
            async with resources.session() as session:
                for snapshot in page:
                    applied += await _upsert(session, snapshot, refill=True)
    finally:
        await resources.close()
    return {"fetched": fetched, "applied": applied}
