"""Personal data on request (PIPL): erasing one customer, exporting what is held about them,
and the retention of the contact log's free text. Functions take a session, never commit.

An admin asks (``request_erasure``); a second person approves (``approve_erasure``: an admin
other than the requester, or the supervisor of the customer's team). Approval anonymises the
archive in the transaction that publishes ``customer.erased`` and writes the erasure's
record; every service that keeps a copy anonymises it and confirms with a receipt event
(``record_receipt``); with every receipt in, the erasure is completed and the one event
that still names the number is scrubbed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.erasure import ERASED_NAME, audit_rewrite, scrub_events
from services.kit.events.contracts import consumers_of
from services.kit.events.publish import publish
from services.kit.values import is_stand_in
from services.profile import repository as repo
from services.profile import service
from services.profile.config import get_profile_settings
from services.profile.contract import PRODUCER, CustomerErased, ErasureReceipt
from services.profile.exceptions import (
    AlreadyErased,
    CustomerNotFound,
    ErasureNotFound,
    ErasureNotPending,
    ErasureOpen,
    Forbidden,
    InvalidInput,
)
from services.profile.models import Customer, Erasure, ErasureStatus, Gender
from services.profile.schemas import (
    AssignmentRead,
    ContactRead,
    ErasureCreate,
    ErasureRead,
    ErasureReceiptRead,
)

logger = logging.getLogger("keepwell.profile.erasure")

RETENTION_BATCH = 1000


def stand_in_for(customer_id: int) -> str:
    """The number an erased customer is filed under: derived from the archive's id, so it
    is unique without any lookup and says nothing about the number it replaces; led by 0,
    so it is never a real mobile number (``services.kit.values.STAND_IN``)."""
    return f"0{customer_id:010d}"


def confirming_services() -> list[str]:
    """Profile, and every service whose contract consumes ``customer.erased``."""
    return sorted({PRODUCER, *consumers_of(CustomerErased.event_type)})


def read(erasure: Erasure) -> ErasureRead:
    receipts = {name: ErasureReceiptRead(**r) for name, r in erasure.receipts.items()}
    waiting = (
        []
        if erasure.status is ErasureStatus.pending
        else [s for s in confirming_services() if s not in receipts]
    )
    return ErasureRead.model_validate(
        {**erasure.model_dump(), "receipts": receipts, "waiting_for": waiting}
    )


async def request_erasure(
    session: AsyncSession, principal: Principal, data: ErasureCreate
) -> Erasure:
    if principal.role is not Role.admin:
        raise Forbidden("只有管理员可以提出删除个人信息的申请")
    if (data.msisdn is None) == (data.customer_id is None):
        raise InvalidInput("msisdn：请给出号码或 customer_id 之一", field="msisdn")
    customer = (
        await repo.get_customer(session, data.msisdn)
        if data.msisdn is not None
        else await repo.get_customer_by_id(session, data.customer_id or 0)
    )
    if customer is None:
        raise CustomerNotFound(data.msisdn or str(data.customer_id))
    assert customer.id is not None
    if is_stand_in(customer.msisdn):
        raise AlreadyErased()
    if await repo.open_erasure_of(session, customer.id) is not None:
        raise ErasureOpen()
    erasure = Erasure(
        customer_id=customer.id,
        status=ErasureStatus.pending,
        reason=data.reason,
        requested_by=principal.user_id,
    )
    await repo.add(session, erasure)
    return erasure


async def get_erasure(session: AsyncSession, principal: Principal, erasure_id: int) -> Erasure:
    erasure = await repo.get_erasure(session, erasure_id)
    if erasure is None:
        raise ErasureNotFound(erasure_id)
    if principal.role is not Role.admin:
        customer = await repo.get_customer_by_id(session, erasure.customer_id)
        manager = await repo.manager_of(session, customer.manager_id if customer else None)
        if principal.role is not Role.supervisor or service.team_of(manager) != principal.team_id:
            raise ErasureNotFound(erasure_id)  # another team's: not theirs to know of
    return erasure


async def approve_erasure(session: AsyncSession, principal: Principal, erasure_id: int) -> Erasure:
    """Four eyes: an admin other than the requester, or the supervisor of the customer's
    team. Anonymises the archive, scrubs profile's retained events of the customer and
    publishes ``customer.erased``, all in the caller's transaction."""
    erasure = await repo.get_erasure(session, erasure_id, for_update=True)
    if erasure is None:
        raise ErasureNotFound(erasure_id)
    customer = await repo.get_customer_by_id(session, erasure.customer_id, for_update=True)
    assert customer is not None and customer.id is not None  # an archive row is never deleted
    manager = await repo.manager_of(session, customer.manager_id)
    team = service.team_of(manager)
    if principal.role is Role.supervisor and (team is None or team != principal.team_id):
        raise ErasureNotFound(erasure_id)
    if principal.role not in (Role.admin, Role.supervisor):
        raise Forbidden("只有管理员或客户所在团队的主管可以批准删除")
    if principal.user_id == erasure.requested_by:
        raise Forbidden("删除申请须由申请人以外的人批准（双人复核）")
    if erasure.status is not ErasureStatus.pending:
        raise ErasureNotPending(erasure.status.value)
    msisdn, stand_in = customer.msisdn, stand_in_for(customer.id)
    async with audit_rewrite(session):
        counts = await repo.erase_customer_rows(session, customer.id, msisdn, stand_in)
    counts["customer"] = 1
    _anonymise(customer, stand_in)
    await session.flush()
    counts["events"] = await scrub_events(session, PRODUCER, msisdn, stand_in)
    now = clock.now()
    erasure.status = ErasureStatus.erasing
    erasure.stand_in = stand_in
    erasure.approved_by = principal.user_id
    erasure.approved_at = now
    erasure.receipts = {PRODUCER: {"at": now.isoformat(), "counts": counts}}
    # Filed under the old number: the relay keeps an aggregate's events in order, so every
    # consumer gets the customer's earlier events before this one.
    await publish(
        session,
        CustomerErased(
            erasure_id=erasure_id,
            msisdn=msisdn,
            stand_in=stand_in,
            customer=service.snapshot_of(customer, manager),
        ),
        aggregate_id=msisdn,
        actor=principal.user_id,
    )
    await _complete_if_confirmed(session, erasure)
    return erasure


def _anonymise(customer: Customer, stand_in: str) -> None:
    """What identifies the person goes; what the KPIs count (tier, levels, region, plan,
    spend, status, manager, dates of the relationship) stays. The customer gets nothing
    more from us: opted out and not to be disturbed."""
    personal = {
        name for name, spec in get_profile_settings().custom_attributes.items() if spec.personal
    }
    customer.msisdn = stand_in
    customer.name = ERASED_NAME
    customer.gender = Gender.unknown
    customer.birthday = None
    customer.family_notes = None
    customer.churn_reason = None
    customer.important_dates = []
    customer.interests = []
    customer.preferences = []
    customer.taboos = []
    customer.tags = []
    customer.custom = {k: v for k, v in customer.custom.items() if k not in personal}
    customer.sms_opt_out = True
    customer.sms_opt_out_at = customer.sms_opt_out_at or clock.now()
    customer.do_not_disturb = True
    customer.version += 1
    customer.updated_at = clock.now()


async def record_receipt(session: AsyncSession, receipt: ErasureReceipt) -> None:
    erasure = await repo.get_erasure(session, receipt.erasure_id, for_update=True)
    if erasure is None or erasure.status is not ErasureStatus.erasing:
        logger.warning(
            "receipt of %s for erasure %d ignored: none is under way",
            receipt.service,
            receipt.erasure_id,
        )
        return
    erasure.receipts = {
        **erasure.receipts,
        receipt.service: {"at": clock.now().isoformat(), "counts": receipt.counts},
    }
    await _complete_if_confirmed(session, erasure)


async def _complete_if_confirmed(session: AsyncSession, erasure: Erasure) -> None:
    if erasure.status is not ErasureStatus.erasing:
        return
    if any(s not in erasure.receipts for s in confirming_services()):
        return
    assert erasure.id is not None and erasure.stand_in is not None
    msisdn = await repo.erasure_event_msisdn(session, erasure.id)
    if msisdn is not None and msisdn != erasure.stand_in:
        # Every consumer has the event, so nothing needs the number any more; the aggregate
        # ids go too, now that ordering by them has done its work.
        await scrub_events(session, PRODUCER, msisdn, erasure.stand_in, aggregates=True)
    erasure.status = ErasureStatus.completed
    erasure.completed_at = clock.now()


# --- access right: everything held about one customer ------------------------------------------


async def export(session: AsyncSession, principal: Principal, msisdn: str) -> dict[str, Any]:
    """Profile's part of a customer's export: the archive, the contact log, who managed
    them, their billing and tier history. Admin only; audited as an unmasked read."""
    if principal.role is not Role.admin:
        raise Forbidden("只有管理员可以导出客户的全部个人信息")
    customer, manager = await service.get_customer(session, principal, msisdn)
    assert customer.id is not None
    archive = service.customer_read(customer, manager)
    contacts = await repo.list_contacts(session, customer.id, None, 1_000_000)
    await service.audit_reads(
        session,
        principal,
        "GET /exports/{msisdn}",
        [(customer.id, customer.msisdn, service.guard_personal(archive, principal))],
    )
    return {
        "customer": archive.model_dump(mode="json"),
        "contact_log": [
            ContactRead.model_validate({**c.model_dump(), "msisdn": customer.msisdn}).model_dump(
                mode="json"
            )
            for c in contacts
        ],
        "manager_history": [
            AssignmentRead.model_validate(a).model_dump(mode="json")
            for a in await repo.assignments(session, customer.id)
        ],
        "billing": await repo.billing_of(session, customer.id),
        "tier_changes": await repo.tier_changes_of(session, customer.id),
    }


# --- retention of free text --------------------------------------------------------------------


async def anonymise_old_contact_text(session: AsyncSession, now: datetime | None = None) -> int:
    """One batch of contact-log notes older than the retention set to NULL (the entries
    stay: the reach rate counts them). Returns how many; the job repeats until 0."""
    days = get_profile_settings().contact_text_retention_days
    before = (now or clock.now()) - timedelta(days=days)
    return await repo.anonymise_old_contact_notes(session, before, RETENTION_BATCH)
