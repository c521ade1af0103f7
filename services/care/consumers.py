"""Care's handlers of profile's customer events: the customer copy, and what follows from
some changes (a new VIP's welcome, a churned customer's tasks cancelled, an erased
customer's messages, tasks and replies anonymised)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.care import repository
from services.care.automatic import service_message, welcome_new_vip
from services.care.config import get_care_settings
from services.care.contract import PRODUCER, CareErasureConfirmed
from services.complaint.contract import ComplaintClosed, ComplaintOpened
from services.kit.clock import today
from services.kit.erasure import erase_copies
from services.kit.events import Envelope
from services.kit.events.consumer import Consumer
from services.kit.events.publish import publish
from services.kit.values import is_stand_in
from services.profile.contract import (
    CustomerChurned,
    CustomerCreated,
    CustomerErased,
    CustomerSnapshot,
    CustomerUpdated,
    ErasureReceipt,
    ManagerReassigned,
    TierChanged,
    newest,
)

VIP_TIERS = frozenset({"diamond", "gold", "silver"})
NEW_SUBSCRIBER_DAYS = 30
CHURNED_TASK_NOTE = "客户已离网，任务自动取消"


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


async def upsert(
    session: AsyncSession, snapshots: Sequence[CustomerSnapshot], *, refill: bool = False
) -> int:
    """Store the newest of these snapshots of each customer, unless the copy holds one as
    new; what follows from a stored one follows too. Returns how many were stored."""
    latest = {s.msisdn: s for s in newest(snapshots)}
    rows = []
    for snapshot in latest.values():
        values = read_model_values(snapshot)
        values["balance"] = Decimal(snapshot.balance)
        rows.append(values)
    stored = await repository.upsert_customers(session, rows, refill=refill)
    # A customer's open calls and visits go with them to their new manager.
    await repository.move_open_tasks(session, {m: latest[m].manager_id for m in stored})
    # Profile has the opt-out the customer replied: its flag decides from now on.
    await repository.settle_opt_out_replies(
        session, [s.msisdn for s in latest.values() if s.sms_opt_out]
    )
    return len(stored)


# Side effects follow the event, not whether this event changed the copy: profile sends
# several events of one change with the same snapshot version (a PATCH that churns a customer
# sends customer.updated, then customer.churned), and the first already stored it. The inbox
# keeps each event to one effect; the copy's current state (never older than the event's)
# keeps a late or replayed event from acting on a customer who has changed since.


async def _is(
    session: AsyncSession, msisdn: str, *, vip: bool = False, churned: bool = False
) -> bool:
    held = await repository.customer_state(session, msisdn)
    if held is None:
        return False
    status, tier = held
    if churned:
        return status == "churned"
    return status == "active" and (not vip or tier in VIP_TIERS)


@consumer.handles_many(CustomerCreated)
async def customers_created(
    session: AsyncSession, events: Sequence[tuple[CustomerCreated, Envelope]]
) -> None:
    customers = [event.customer for event, _ in events]
    await upsert(session, customers)
    # Loading an existing customer base creates customers too; only a subscriber who joined
    # recently is a new VIP to welcome.
    since = today() - timedelta(days=NEW_SUBSCRIBER_DAYS)
    for customer in customers:
        if (
            customer.tier in VIP_TIERS
            and customer.join_date >= since
            and await _is(session, customer.msisdn, vip=True)
        ):
            await welcome_new_vip(session, customer.msisdn, customer.manager_id)


@consumer.handles_many(CustomerUpdated)
async def customers_updated(
    session: AsyncSession, events: Sequence[tuple[CustomerUpdated, Envelope]]
) -> None:
    await upsert(session, [event.customer for event, _ in events])


@consumer.handles(TierChanged)
async def tier_changed(session: AsyncSession, event: TierChanged, _: Envelope) -> None:
    await upsert(session, [event.customer])
    became_vip = event.old_tier not in VIP_TIERS and event.new_tier in VIP_TIERS
    if became_vip and await _is(session, event.customer.msisdn, vip=True):
        await welcome_new_vip(session, event.customer.msisdn, event.customer.manager_id)


@consumer.handles(ManagerReassigned)
async def manager_reassigned(session: AsyncSession, event: ManagerReassigned, _: Envelope) -> None:
    await upsert(session, [event.customer])


@consumer.handles(CustomerChurned)
async def customer_churned(session: AsyncSession, event: CustomerChurned, _: Envelope) -> None:
    await upsert(session, [event.customer])
    # Winning a churned customer back is the warning service's follow-up, not a care call.
    if await _is(session, event.customer.msisdn, churned=True):
        await repository.cancel_open_tasks(session, event.customer.msisdn, CHURNED_TASK_NOTE)


# What care keeps by number and its personal text: the rendered SMS and the provider's
# error about it, task notes, the customer's replies. Rows stay under the stand-in, so
# campaign reports and task counts do not move.
ERASED_COLUMNS: dict[str, dict[str, Any]] = {
    "recipient": {"text": None, "error_message": None},
    "greeting": {},
    "list_member": {},
    "task": {"note": None, "outcome_note": None},
    "sms_reply": {"content": ""},
}


@consumer.handles(CustomerErased)
async def customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Anonymise care's copies of an erased customer and confirm it to profile. A replay
    of the event, scrubbed once every service confirmed, finds nothing to do."""
    if is_stand_in(event.msisdn):
        return
    counts = await erase_copies(session, PRODUCER, event.msisdn, event.stand_in, ERASED_COLUMNS)
    await upsert(session, [event.customer])
    await publish(
        session,
        CareErasureConfirmed(
            receipt=ErasureReceipt(erasure_id=event.erasure_id, service=PRODUCER, counts=counts)
        ),
        aggregate_id=f"erasure:{event.erasure_id}",
    )


# Service messages about a customer's complaint ({honorific} from the copy: 王先生).
COMPLAINT_ACK = (
    "{honorific}您好，您的投诉已受理，工单号%s。我们会尽快处理并与您联系，感谢您的耐心。"
)
COMPLAINT_CLOSED = (
    "{honorific}您好，您的投诉（工单号%s）已处理完毕。如仍有问题，请随时联系您的客户经理。"
)
COMPLAINT_FOLLOW_UP = (
    "{honorific}您好，关于工单%s的处理结果，您是否满意？"
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
