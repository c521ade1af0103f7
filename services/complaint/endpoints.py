"""HTTP routes of the complaint service: thin, the rules live in service.py."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint import reports, service
from services.complaint import repository as repo
from services.complaint.exceptions import CategoryNotFound
from services.complaint.models import (
    BusinessCalendarRow,
    Category,
    Severity,
    SlaPolicy,
    State,
    Ticket,
)
from services.complaint.schemas import (
    Acknowledge,
    ActionRead,
    Agree,
    AlertRead,
    AttachmentIn,
    AttachmentRead,
    AuditRead,
    CalendarRead,
    CalendarUpdate,
    CategoryIn,
    CategoryRead,
    CategoryUpdate,
    Clarify,
    Close,
    CompensationIn,
    CompensationRead,
    CompensationSummary,
    ComplaintCreate,
    ComplaintDetail,
    ComplaintPage,
    ComplaintRead,
    Decision,
    EscalationContactIn,
    EscalationContactRead,
    PolicyIn,
    PolicyRead,
    Reassign,
    Report,
    Satisfaction,
    SlaRead,
    StepRead,
    SweepResult,
    TicketSlaRead,
    Track,
    Versioned,
    YearImport,
)
from services.kit import clock
from services.kit.access import EVERYONE, STAFF
from services.kit.app import Idempotent, Session
from services.kit.auth import Acting, Principal, Role, Scope, require_role
from services.kit.errors import InvalidInput
from services.kit.idempotency import IdempotentRoute
from services.kit.masking import sees_numbers
from services.kit.params import CustomerIdsQuery, MsisdnsQuery
from services.kit.values import MAX_BATCH

router = APIRouter(route_class=IdempotentRoute)

Staff = Annotated[Principal, Depends(require_role(Role.manager, Role.supervisor, Role.operator))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]
Lead = Annotated[Principal, Depends(require_role(Role.supervisor, Role.operator))]
Approver = Annotated[Principal, Depends(require_role(Role.supervisor))]


async def reads(
    session: AsyncSession, principal: Principal, tickets: Sequence[Ticket]
) -> list[ComplaintRead]:
    """The tickets as this caller reads them: with their customer's id, and as a partner may
    see them to a partner."""
    ids = await repo.customer_ids(session, [t.msisdn for t in tickets])
    found = [
        ComplaintRead(
            **t.model_dump(), allowed_next=service.allowed_next(t), customer_id=ids.get(t.msisdn)
        )
        for t in tickets
    ]
    if principal.role is not Role.partner:
        return found
    shown = sees_numbers(principal)
    return [r.for_partner(shown) for r in found]


async def read_of(session: AsyncSession, principal: Principal, ticket: Ticket) -> ComplaintRead:
    (read,) = await reads(session, principal, [ticket])
    return read


def _comp(c: Any) -> CompensationRead:
    return CompensationRead(
        **c.model_dump(exclude={"amount_fen"}), amount=service._yuan(c.amount_fen)
    )


# -- categories ---------------------------------------------------------------------------------


@router.get("/categories", tags=["categories"], summary="Complaint categories")
async def get_categories(
    session: Session, _: Staff, include_inactive: bool = False
) -> list[CategoryRead]:
    found = await repo.list_categories(session, include_inactive)
    if not found and await service.install_defaults(session):
        found = await repo.list_categories(session, include_inactive)
    return [CategoryRead.model_validate(c.model_dump()) for c in found]


@router.post(
    "/categories",
    tags=["categories"],
    status_code=201,
    summary="Add a category",
    dependencies=[Idempotent],
)
async def post_category(data: CategoryIn, session: Session, _: Admin) -> CategoryRead:
    if await repo.get_category(session, data.code) is not None:
        raise InvalidInput(f"category {data.code!r} exists already", field="code")
    category = Category(**data.model_dump())
    session.add(category)
    await session.flush()
    return CategoryRead.model_validate(category.model_dump())


@router.patch("/categories/{code}", tags=["categories"], summary="Rename or (de)activate")
async def patch_category(
    code: str, data: CategoryUpdate, session: Session, _: Admin
) -> CategoryRead:
    category = await repo.get_category(session, code)
    if category is None:
        raise CategoryNotFound(f"no category {code!r}", field="code")
    for key, value in data.model_dump(exclude_none=True).items():
        setattr(category, key, value)
    await session.flush()
    return CategoryRead.model_validate(category.model_dump())


# -- complaints ---------------------------------------------------------------------------------


@router.post(
    "/complaints",
    tags=["complaints"],
    status_code=201,
    summary="Register a complaint",
    dependencies=[Idempotent],
)
async def post_complaint(
    data: ComplaintCreate, session: Session, principal: Staff
) -> ComplaintRead:
    return await read_of(session, principal, await service.create_ticket(session, principal, data))


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(base64.urlsafe_b64decode(value.encode()).decode())
    except ValueError as exc:
        raise InvalidInput("not a cursor this API returned", field="cursor") from exc


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


@router.get(
    "/complaints",
    tags=["complaints"],
    summary="Complaints you may see, newest first",
    description="Admin and operator see every ticket, supervisors and managers their team's "
    "(a manager without a team: the tickets they handle), partners with `complaints:read` "
    "every ticket as `ComplaintRead.for_partner` shows it (number masked; no description, "
    "handler or satisfaction reason). Every filter given applies (`state` repeatable: any of "
    "them). `msisdn` is repeatable: the batched read of up to 100 customers' complaints (the "
    "gateway's loader; add `state` for the open ones); `customer_id` the same by profile's "
    "customer id (a partner's loader); `limit` caps the whole page, `next_cursor` continues "
    "it.",
)
async def get_complaints(
    session: Session,
    principal: Acting,
    state: Annotated[list[State] | None, Query()] = None,
    handler_id: str | None = None,
    team_id: str | None = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    severity: Severity | None = None,
    breached: bool | None = None,
    due_before: datetime | None = None,
    msisdn: MsisdnsQuery = None,
    customer_id: CustomerIdsQuery = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ComplaintPage:
    found = await repo.list_tickets(
        session,
        service.scope_of(principal),
        states=state,
        handler_id=handler_id,
        team_id=team_id,
        category=category,
        severity=severity,
        breached=breached,
        due_before=due_before,
        msisdns=msisdn,
        customer_ids=customer_id,
        after_id=_cursor(cursor),
        limit=limit + 1,
    )
    more = len(found) > limit
    items = found[:limit]
    next_cursor = _encode(str(items[-1].id)) if more and items else None
    return ComplaintPage(items=await reads(session, principal, items), next_cursor=next_cursor)


@router.get(
    "/complaints/queue",
    tags=["complaints"],
    summary="My queue: the open complaints I handle, nearest due time first",
)
async def get_queue(
    session: Session,
    principal: Acting,
    handler_id: Annotated[str | None, Query(description="supervisors: a team member")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ComplaintPage:
    handler = principal.user_id
    if handler_id is not None and handler_id != principal.user_id:
        if principal.role is Role.manager:
            raise InvalidInput("a manager's queue is their own", field="handler_id")
        handler = handler_id
    after: tuple[datetime | None, int] | None = None
    if cursor is not None:
        try:
            due_text, _, last = base64.urlsafe_b64decode(cursor.encode()).decode().partition("~")
            after = (datetime.fromisoformat(due_text) if due_text else None, int(last))
        except ValueError as exc:
            raise InvalidInput("not a cursor this API returned", field="cursor") from exc
    found = await repo.queue_of(session, handler, after, limit + 1)
    scope = service.scope_of(principal)
    if scope.team_id is not None:
        found = [t for t in found if t.team_id == scope.team_id]
    more = len(found) > limit
    items = found[:limit]
    next_cursor = None
    if more and items:
        last_item = items[-1]
        due = last_item.next_due_at.isoformat() if last_item.next_due_at else ""
        next_cursor = _encode(f"{due}~{last_item.id}")
    return ComplaintPage(items=await reads(session, principal, items), next_cursor=next_cursor)


@router.get(
    "/complaints/sla",
    tags=["sla"],
    summary="The SLA clocks of several complaints (batched read)",
    description="`?id=1&id=2` (at most 100): per complaint the caller may see, what "
    "`GET /complaints/{id}/sla` answers, with `complaint_id`; others are left out.",
)
async def get_slas(
    session: Session,
    principal: Acting,
    complaint_id: Annotated[list[int], Query(alias="id", min_length=1, max_length=MAX_BATCH)],
) -> list[TicketSlaRead]:
    found = await repo.get_tickets(session, service.scope_of(principal), complaint_id)
    views = await service.sla_views(session, found)
    return [
        TicketSlaRead.model_validate({**view, "complaint_id": t.id})
        for t, view in zip(found, views, strict=True)
    ]


@router.get(
    "/complaints/{complaint_id}",
    tags=["complaints"],
    summary="One complaint in full",
    description="Partners (`complaints:read`) get it as in the list with its SLA, and none of "
    "the handling (steps, actions, attachments: the handler's notes and the customer's "
    "words) nor compensation.",
)
async def get_complaint(complaint_id: int, session: Session, principal: Acting) -> ComplaintDetail:
    ticket = await service.get_ticket(session, principal, complaint_id)
    read = await read_of(session, principal, ticket)
    sla = SlaRead.model_validate(await service.sla_view(session, ticket))
    if principal.role is Role.partner:
        return ComplaintDetail(
            **read.model_dump(), steps=[], actions=[], attachments=[], sla=sla, compensation=None
        )
    steps = await repo.steps_of(session, complaint_id)
    actions = await repo.actions_of(session, complaint_id)
    attachments = await repo.attachments_of(session, complaint_id)
    return ComplaintDetail(
        **read.model_dump(),
        steps=[StepRead.model_validate(s.model_dump()) for s in steps],
        actions=[ActionRead.model_validate(a.model_dump()) for a in actions],
        attachments=[AttachmentRead.model_validate(a.model_dump()) for a in attachments],
        sla=sla,
        compensation=CompensationSummary.model_validate(
            await service.compensation_summary(session, ticket.msisdn)
        ),
    )


@router.get("/complaints/{complaint_id}/sla", tags=["sla"], summary="Per metric: target, due, used")
async def get_sla(complaint_id: int, session: Session, principal: Acting) -> SlaRead:
    ticket = await service.get_ticket(session, principal, complaint_id)
    return SlaRead.model_validate(await service.sla_view(session, ticket))


@router.get("/complaints/{complaint_id}/steps", tags=["complaints"], summary="Recorded steps")
async def get_steps(complaint_id: int, session: Session, principal: Acting) -> list[StepRead]:
    await service.get_ticket(session, principal, complaint_id)
    return [
        StepRead.model_validate(s.model_dump()) for s in await repo.steps_of(session, complaint_id)
    ]


Id = Annotated[int, Path(ge=1)]


@router.post("/complaints/{complaint_id}/acknowledge", tags=["flow"], summary="情绪认同")
async def post_acknowledge(
    complaint_id: Id, data: Acknowledge, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.acknowledge(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/clarify", tags=["flow"], summary="事实澄清")
async def post_clarify(
    complaint_id: Id, data: Clarify, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.clarify(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/agree", tags=["flow"], summary="方案讨论")
async def post_agree(
    complaint_id: Id, data: Agree, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.agree(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/track", tags=["flow"], summary="执行跟踪")
async def post_track(
    complaint_id: Id, data: Track, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.track(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/close", tags=["flow"], summary="Close with satisfaction")
async def post_close(
    complaint_id: Id, data: Close, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.close(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/wait", tags=["flow"], summary="Wait for the customer")
async def post_wait(
    complaint_id: Id, data: Versioned, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.wait_for_customer(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/resume", tags=["flow"], summary="The customer is back")
async def post_resume(
    complaint_id: Id, data: Versioned, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.resume(session, principal, complaint_id, data)
    )


@router.post("/complaints/{complaint_id}/reopen", tags=["flow"], summary="Reopen (within N days)")
async def post_reopen(
    complaint_id: Id, data: Versioned, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.reopen(session, principal, complaint_id, data)
    )


@router.post(
    "/complaints/{complaint_id}/satisfaction",
    tags=["flow"],
    summary="The customer's satisfaction answer after closing (回访)",
)
async def post_satisfaction(
    complaint_id: Id, data: Satisfaction, session: Session, principal: Acting
) -> ComplaintRead:
    return await read_of(
        session,
        principal,
        await service.record_satisfaction(session, principal, complaint_id, data),
    )


@router.post("/complaints/{complaint_id}/reassign", tags=["flow"], summary="Another handler")
async def post_reassign(
    complaint_id: Id, data: Reassign, session: Session, principal: Lead
) -> ComplaintRead:
    return await read_of(
        session, principal, await service.reassign(session, principal, complaint_id, data)
    )


@router.post(
    "/complaints/{complaint_id}/attachments",
    tags=["complaints"],
    status_code=201,
    summary="Add a reference to a file kept elsewhere",
    dependencies=[Idempotent],
)
async def post_attachment(
    complaint_id: Id, data: AttachmentIn, session: Session, principal: Acting
) -> dict[str, int]:
    return {"attachments": await service.add_attachment(session, principal, complaint_id, data)}


# -- compensation -------------------------------------------------------------------------------


@router.post(
    "/complaints/{complaint_id}/compensations",
    tags=["compensation"],
    status_code=201,
    summary="Request compensation (above a per-kind amount it needs approval)",
    dependencies=[Idempotent],
)
async def post_compensation(
    complaint_id: Id, data: CompensationIn, session: Session, principal: Acting
) -> CompensationRead:
    return _comp(await service.request_compensation(session, principal, complaint_id, data))


@router.get(
    "/complaints/{complaint_id}/compensations",
    tags=["compensation"],
    summary="A complaint's compensation and its audit trail",
)
async def get_compensations(
    complaint_id: Id, session: Session, principal: Acting
) -> dict[str, Any]:
    await service.get_ticket(session, principal, complaint_id)
    found = await repo.compensations_of(session, complaint_id)
    audit = await repo.audit_of(session, [c.id for c in found if c.id is not None])
    return {
        "items": [_comp(c).model_dump(mode="json") for c in found],
        "audit": [AuditRead.model_validate(a.model_dump()).model_dump(mode="json") for a in audit],
    }


@router.post("/compensations/{compensation_id}/approve", tags=["compensation"], summary="Approve")
async def post_approve(
    compensation_id: Id, data: Decision, session: Session, principal: Approver
) -> CompensationRead:
    return _comp(await service.decide_compensation(session, principal, compensation_id, True, data))


@router.post("/compensations/{compensation_id}/reject", tags=["compensation"], summary="Reject")
async def post_reject(
    compensation_id: Id, data: Decision, session: Session, principal: Approver
) -> CompensationRead:
    return _comp(
        await service.decide_compensation(session, principal, compensation_id, False, data)
    )


@router.post(
    "/compensations/{compensation_id}/execute", tags=["compensation"], summary="Carry it out"
)
async def post_execute(
    compensation_id: Id, data: Decision, session: Session, principal: Acting
) -> CompensationRead:
    return _comp(await service.execute_compensation(session, principal, compensation_id, data))


# -- SLA policies, calendars, escalation --------------------------------------------------------


def _policy(p: SlaPolicy) -> PolicyRead:
    return PolicyRead.model_validate(p.model_dump())


@router.get("/sla/policies", tags=["sla"], summary="SLA policies in the order they are tried")
async def get_policies(session: Session, _: Acting) -> list[PolicyRead]:
    found = await repo.policies(session, active_only=False)
    if not found and await service.install_defaults(session):
        found = await repo.policies(session, active_only=False)
    return [_policy(p) for p in found]


@router.post(
    "/sla/policies",
    tags=["sla"],
    status_code=201,
    summary="Add a policy",
    dependencies=[Idempotent],
)
async def post_policy(data: PolicyIn, session: Session, _: Admin) -> PolicyRead:
    return _policy(await service.create_policy(session, data))


@router.put(
    "/sla/policies/{policy_id}",
    tags=["sla"],
    summary="Change a policy: applies from now on, open tickets keep the time used",
)
async def put_policy(policy_id: Id, data: PolicyIn, session: Session, _: Admin) -> dict[str, Any]:
    policy, rebased = await service.update_policy(session, policy_id, data)
    return {"policy": _policy(policy).model_dump(mode="json"), "clocks_rebased": rebased}


@router.get("/calendars", tags=["calendars"], summary="Business calendars")
async def get_calendars(session: Session, _: Acting) -> list[CalendarRead]:
    rows = await repo.calendar_rows(session)
    if not rows and await service.install_defaults(session):
        rows = await repo.calendar_rows(session)
    return [
        CalendarRead.model_validate(await service.calendar_read(session, r.id or 0)) for r in rows
    ]


@router.get("/calendars/{calendar_id}", tags=["calendars"], summary="One calendar")
async def get_calendar(calendar_id: Id, session: Session, _: Acting) -> CalendarRead:
    return CalendarRead.model_validate(await service.calendar_read(session, calendar_id))


@router.patch(
    "/calendars/{calendar_id}",
    tags=["calendars"],
    summary="Working hours, weekdays or time zone (running clocks keep the time used)",
)
async def patch_calendar(
    calendar_id: Id, data: CalendarUpdate, session: Session, _: Admin
) -> dict[str, Any]:
    rebased = await service.update_calendar(session, calendar_id, data)
    read = CalendarRead.model_validate(await service.calendar_read(session, calendar_id))
    return {"calendar": read.model_dump(mode="json"), "clocks_rebased": rebased}


@router.put(
    "/calendars/{calendar_id}/years/{year}",
    tags=["calendars"],
    summary="Load a year's official schedule (days off, weekend working days)",
)
async def put_year(
    calendar_id: Id,
    year: Annotated[int, Path(ge=2000, le=2100)],
    data: YearImport,
    session: Session,
    principal: Admin,
) -> dict[str, Any]:
    if await session.get(BusinessCalendarRow, calendar_id) is None:
        from services.complaint.exceptions import CalendarNotFound

        raise CalendarNotFound(f"no calendar {calendar_id}", field="calendar_id")
    rebased = await service.import_year(session, principal, calendar_id, year, data)
    read = CalendarRead.model_validate(await service.calendar_read(session, calendar_id))
    return {"calendar": read.model_dump(mode="json"), "clocks_rebased": rebased}


@router.get("/escalation-contacts", tags=["sla"], summary="Whom each team's breaches go to")
async def get_contacts(session: Session, _: Lead) -> list[EscalationContactRead]:
    return [
        EscalationContactRead.model_validate(c.model_dump())
        for c in await repo.escalation_contacts(session)
    ]


@router.put("/escalation-contacts/{team_id}", tags=["sla"], summary="Set a team's contacts")
async def put_contact(
    team_id: Annotated[str, Path(max_length=32)],
    data: EscalationContactIn,
    session: Session,
    principal: Admin,
) -> EscalationContactRead:
    await repo.upsert_escalation_contact(
        session, {"team_id": team_id, **data.model_dump(), "updated_by": principal.user_id}
    )
    found = [c for c in await repo.escalation_contacts(session) if c.team_id == team_id]
    return EscalationContactRead.model_validate(found[0].model_dump())


@router.get("/alerts", tags=["sla"], summary="Warnings and escalations you may see")
async def get_alerts(
    session: Session,
    principal: Acting,
    mine: Annotated[bool, Query(description="only those addressed to me")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertRead]:
    rows = await repo.alerts(
        session, service.scope_of(principal), principal.user_id if mine else None, limit
    )
    names = {1: "warning", 2: "breach", 3: "escalation"}
    return [AlertRead(**r._mapping, level_name=names.get(r.level, "?")) for r in rows]


@router.post(
    "/sla/sweep",
    tags=["sla"],
    summary="Run the SLA sweep now (the worker runs it every minute; safe to repeat)",
)
async def post_sweep(session: Session, _: Lead) -> SweepResult:
    result, _more = await service.sweep(session)
    return result


# -- reports ------------------------------------------------------------------------------------


def _month_ago() -> date:
    return clock.today() - timedelta(days=30)


@router.get("/reports", tags=["reports"], summary="SLA compliance, step times, satisfaction...")
async def get_report(
    session: Session,
    principal: Acting,
    start: Annotated[date, Query(default_factory=_month_ago)],
    end: Annotated[date, Query(default_factory=clock.today)],
    group_by: Annotated[str, Query(pattern="^(team|category|channel|handler)$")] = "team",
) -> Report:
    if end < start:
        raise InvalidInput("end is before start", field="end")
    return await reports.report(session, service.scope_of(principal), group_by, start, end)


# Who may call what (services/kit/access.py) where no gate above says: partners none; the
# scope of each ticket is the service's (a team's, the handler's).
# Partners (complaints:read, ROUTE_SCOPES) read tickets as ComplaintRead.for_partner shows
# them, and their SLA clocks; never the steps, actions or compensation.
PARTNER_READS = [
    ("GET", "/complaints"),
    ("GET", "/complaints/sla"),
    ("GET", "/complaints/{complaint_id}"),
    ("GET", "/complaints/{complaint_id}/sla"),
]
ROUTE_ROLES: dict[tuple[str, str], tuple[Role, ...]] = {
    **{key: (*STAFF, Role.partner) for key in PARTNER_READS},
    **{
        (method, path): STAFF
        for method, path in [
            ("GET", "/complaints/queue"),
            ("GET", "/complaints/{complaint_id}/steps"),
            ("POST", "/complaints/{complaint_id}/acknowledge"),
            ("POST", "/complaints/{complaint_id}/clarify"),
            ("POST", "/complaints/{complaint_id}/agree"),
            ("POST", "/complaints/{complaint_id}/track"),
            ("POST", "/complaints/{complaint_id}/close"),
            ("POST", "/complaints/{complaint_id}/wait"),
            ("POST", "/complaints/{complaint_id}/resume"),
            ("POST", "/complaints/{complaint_id}/reopen"),
            ("POST", "/complaints/{complaint_id}/satisfaction"),
            ("POST", "/complaints/{complaint_id}/attachments"),
            ("POST", "/complaints/{complaint_id}/compensations"),
            ("GET", "/complaints/{complaint_id}/compensations"),
            ("POST", "/compensations/{compensation_id}/execute"),
            ("GET", "/alerts"),
            ("GET", "/reports"),
        ]
    },
    ("GET", "/sla/policies"): EVERYONE,
    ("GET", "/calendars"): EVERYONE,
    ("GET", "/calendars/{calendar_id}"): EVERYONE,
}
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {key: Scope.complaints_read for key in PARTNER_READS}
