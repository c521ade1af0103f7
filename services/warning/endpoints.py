"""HTTP routes of the warning service: thin, the rules live in service.py."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError

from services.kit.access import EVERYONE, STAFF
from services.kit.app import Idempotent, Session, resources
from services.kit.auth import Acting, Principal, Role, Scope, require_role
from services.kit.errors import InvalidInput, chinese_message
from services.kit.idempotency import IdempotentRoute
from services.kit.masking import mask_msisdn, sees_numbers
from services.kit.params import CustomerIdsQuery, MsisdnsQuery
from services.kit.periods import FROM_DESCRIPTION, TO_DESCRIPTION
from services.warning import repository as repo
from services.warning import service
from services.warning.config import get_warning_settings
from services.warning.models import Signal, Status, Warning
from services.warning.repository import list_warnings
from services.warning.schemas import (
    MSISDN_PATTERN,
    BandsUpdate,
    ChurnReasonReport,
    ContactCreate,
    ContactRead,
    DetectionQueued,
    OpenReport,
    Resolve,
    RetentionReport,
    RiskRead,
    RowError,
    RuleSetRead,
    RuleUpdate,
    UsageBatch,
    UsageBatchResult,
    UsageRow,
    WarningDetail,
    WarningRead,
)

router = APIRouter(route_class=IdempotentRoute)

# The operator's usage feed: operators' scripts, or a partner system with its API key.
Feeder = Annotated[Principal, Depends(require_role(Role.operator, Role.partner))]
RuleEditor = Annotated[Principal, Depends(require_role(Role.supervisor))]


def parse_usage_rows(raw: list[dict[str, object]]) -> tuple[list[UsageRow], list[RowError]]:
    good: list[UsageRow] = []
    bad: list[RowError] = []
    for number, item in enumerate(raw, 1):
        try:
            good.append(UsageRow.model_validate(item))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or None
            bad.append(
                RowError(row=number, field=field, message=f"{field}：{chinese_message(error)}")
            )
    return good, bad


@router.post(
    "/usage/batch",
    tags=["usage"],
    summary="Load daily usage rows (idempotent)",
    dependencies=[Idempotent],
)
async def load_usage(batch: UsageBatch, session: Session, _: Feeder) -> UsageBatchResult:
    """Good rows are stored (a subscriber-day sent again replaces the earlier row); bad
    rows are reported by position and field, and do not hold back the good ones."""
    limit = get_warning_settings().max_batch_rows
    if len(batch.rows) > limit:
        raise InvalidInput(f"每批至多 {limit} 行，请拆分文件", field="rows")
    good, bad = parse_usage_rows(batch.rows)
    accepted = await service.store_usage(session, good)
    return UsageBatchResult(accepted=accepted, rejected=bad)


@router.get(
    "/warnings",
    tags=["warnings"],
    summary="Warnings you may see, highest risk first (open and in progress unless `status`)",
    description="Managers and supervisors see their team's warnings (a manager whose token "
    "names no team: their own; `manager_id` narrows to one manager's), admin and operator "
    "all; partners with `warnings:read` all, as `WarningRead.for_partner` shows them (number "
    "masked; no resolution note, manager or resolver). Every filter given applies. `msisdn` "
    "is repeatable: the batched read of up to 100 customers' warnings (the gateway's "
    "loader), with `status` and `signal` as usual; `customer_id` the same by profile's "
    "customer id (a partner's loader); `limit` caps the whole answer (at most 500), so a "
    "loader asks enough for all of them.",
)
async def get_warnings(
    session: Session,
    principal: Acting,
    status: Annotated[
        list[Status] | None,
        Query(
            description="repeat to ask for several; without it, the warnings still to "
            "follow up (open and in_progress): ask status=resolved for the resolved ones"
        ),
    ] = None,
    signal: Signal | None = None,
    msisdn: MsisdnsQuery = None,
    customer_id: CustomerIdsQuery = None,
    manager_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[WarningRead]:
    found = await list_warnings(
        session,
        service.scope_of(principal),
        statuses=status or [Status.open, Status.in_progress],
        signal=signal,
        msisdns=msisdn,
        customer_ids=customer_id,
        manager_id=manager_id,
        limit=limit,
        offset=offset,
    )
    return await _reads(session, principal, found)


async def _reads(
    session: Session, principal: Principal, warnings: list[Warning]
) -> list[WarningRead]:
    """The warnings as this caller reads them: with their customer's id, and as a partner
    may see them to a partner."""
    ids = await repo.customer_ids(session, [w.msisdn for w in warnings])
    reads = [WarningRead.of(w, ids.get(w.msisdn)) for w in warnings]
    if principal.role is not Role.partner:
        return reads
    shown = sees_numbers(principal)
    return [r.for_partner(shown) for r in reads]


@router.get(
    "/warnings/{warning_id}",
    tags=["warnings"],
    summary="One warning and its contacts",
    description="Partners (`warnings:read`) get it as in the list, without the contacts "
    "(their notes are the manager's words).",
)
async def get_warning(warning_id: int, session: Session, principal: Acting) -> WarningDetail:
    warning = await service.get_warning(session, warning_id, principal)
    (read,) = await _reads(session, principal, [warning])
    contacts = [] if principal.role is Role.partner else await repo.contacts_of(session, warning_id)
    return WarningDetail(
        **read.model_dump(),
        contacts=[ContactRead.model_validate(c.model_dump()) for c in contacts],
    )


@router.post(
    "/warnings/{warning_id}/contacts",
    tags=["warnings"],
    status_code=201,
    summary="Record a contact with the customer (open -> in_progress)",
    dependencies=[Idempotent],
)
async def post_contact(
    warning_id: int, data: ContactCreate, session: Session, principal: Acting
) -> ContactRead:
    contact = await service.record_contact(session, warning_id, data, principal)
    return ContactRead.model_validate(contact.model_dump())


@router.post(
    "/subscribers/{msisdn}/contacts",
    tags=["warnings"],
    status_code=201,
    summary="Record one contact against all of the customer's open warnings",
    description="One call or visit about everything at once: the contact is linked to each "
    "open warning of the customer (each moves open -> in_progress) and goes into the "
    "customer's contact log once. 404 when the customer has no open warning.",
    dependencies=[Idempotent],
)
async def post_customer_contact(
    msisdn: Annotated[str, Path(pattern=MSISDN_PATTERN)],
    data: ContactCreate,
    session: Session,
    principal: Acting,
) -> list[ContactRead]:
    contacts = await service.record_customer_contact(session, msisdn, data, principal)
    return [ContactRead.model_validate(c.model_dump()) for c in contacts]


@router.post(
    "/warnings/{warning_id}/resolve",
    tags=["warnings"],
    summary="Resolve with an outcome: retained (action), churned (reason) or false alarm",
)
async def post_resolve(
    warning_id: int, data: Resolve, session: Session, principal: Acting
) -> WarningRead:
    (read,) = await _reads(
        session, principal, [await service.resolve(session, warning_id, data, principal)]
    )
    return read


@router.get(
    "/subscribers/{msisdn}/risk",
    tags=["warnings"],
    summary="Risk score 0-100 and the open signals it is made of",
)
async def get_risk(
    msisdn: Annotated[str, Path(pattern=MSISDN_PATTERN)], session: Session, principal: Acting
) -> RiskRead:
    return await service.risk_of(session, msisdn, principal)


@router.get(
    "/risk",
    tags=["warnings"],
    summary="Risk scores of several subscribers in one call",
    description="The batched form of `GET /subscribers/{msisdn}/risk`: a list of the same "
    "`RiskRead` objects, one per requested number that read would answer, in the order "
    "asked (duplicates once). Left out: numbers that are not customers and customers "
    "outside your scope (another team's), both 404 there. At most 100 numbers, or instead "
    "up to 100 `customer_id` (profile's ids: a partner's loader; numbers masked for "
    "partners); answered in a fixed number of queries, whatever their count.",
)
async def get_risks(
    session: Session,
    principal: Acting,
    msisdn: MsisdnsQuery = None,
    customer_id: CustomerIdsQuery = None,
) -> list[RiskRead]:
    if (msisdn is None) == (customer_id is None):
        raise InvalidInput(
            "msisdn 或 customer_id：须给出其一（可重复，?msisdn=A&msisdn=B）", field="msisdn"
        )
    numbers = msisdn if msisdn is not None else await repo.numbers_of(session, customer_id or [])
    risks = await service.risks_of(session, numbers, principal)
    ids = await repo.customer_ids(session, [r.msisdn for r in risks])
    shown = sees_numbers(principal)
    return [
        r.model_copy(
            update={
                "customer_id": ids.get(r.msisdn),
                "msisdn": r.msisdn if shown else mask_msisdn(r.msisdn),
            }
        )
        for r in risks
    ]


@router.get("/rules", tags=["rules"], summary="The current rule set")
async def get_rules(session: Session, _: Acting) -> RuleSetRead:
    return RuleSetRead.model_validate((await service.current_rules(session)).model_dump())


@router.get("/rules/{version}", tags=["rules"], summary="One version of the rule set")
async def get_rules_version(version: int, session: Session, _: Acting) -> RuleSetRead:
    return RuleSetRead.model_validate((await service.rule_set(session, version)).model_dump())


@router.put(
    "/rules/signals/{signal}",
    tags=["rules"],
    summary="Change one signal's rule (or a tier override); makes a new version",
)
async def put_rule(
    signal: Signal, change: RuleUpdate, session: Session, principal: RuleEditor
) -> RuleSetRead:
    updated = await service.update_rule(session, signal, change, principal)
    return RuleSetRead.model_validate(updated.model_dump())


@router.delete(
    "/rules/signals/{signal}/tiers/{tier}",
    tags=["rules"],
    summary="Remove a tier override; makes a new version",
)
async def delete_override(
    signal: Signal, tier: str, session: Session, principal: RuleEditor
) -> RuleSetRead:
    updated = await service.remove_override(session, signal, tier, principal)
    return RuleSetRead.model_validate(updated.model_dump())


@router.put("/rules/bands", tags=["rules"], summary="Severity bands and due days by risk score")
async def put_bands(change: BandsUpdate, session: Session, principal: RuleEditor) -> RuleSetRead:
    updated = await service.update_bands(session, change, principal)
    return RuleSetRead.model_validate(updated.model_dump())


@router.post(
    "/detection/runs",
    tags=["detection"],
    status_code=202,
    summary="Queue detection for one day (the worker runs it; safe to repeat)",
)
async def post_detection(
    request: Request,
    _: Feeder,
    day: Annotated[date | None, Query(description="defaults to yesterday")] = None,
) -> DetectionQueued:
    target = day or service.business_today() - timedelta(days=1)
    job_id = f"detect_day:{target.isoformat()}"
    # A job id per day: while one run of that day is queued or recent, asking again is a no-op.
    job = await resources(request).redis.enqueue_job(
        "detect_day", target.isoformat(), _job_id=job_id
    )
    return DetectionQueued(day=target, job_id=job_id, queued=job is not None)


@router.get("/reports/open", tags=["reports"], summary="Open warnings by signal/severity/manager")
async def report_open(session: Session, principal: Acting) -> OpenReport:
    return await service.open_report(session, principal)


def _default_from() -> date:
    return service.business_today() - timedelta(days=30)


def _default_to() -> date:
    return service.business_today() + timedelta(days=1)


PeriodFrom = Annotated[
    date,
    Query(
        alias="from",
        default_factory=_default_from,
        description=f"{FROM_DESCRIPTION}; defaults to 30 days ago",
    ),
]
PeriodTo = Annotated[
    date,
    Query(
        alias="to",
        default_factory=_default_to,
        description=f"{TO_DESCRIPTION}; defaults to tomorrow (today included)",
    ),
]


@router.get(
    "/reports/retention",
    tags=["reports"],
    summary="Retention success by action/signal",
    description="Warnings resolved in the period, by retention action and by signal; "
    "`success_rate` = retained / (retained + churned). Beijing days, `to` excluded.",
)
async def report_retention(
    session: Session, principal: Acting, period_from: PeriodFrom, period_to: PeriodTo
) -> RetentionReport:
    return await service.retention_report(session, principal, period_from, period_to)


@router.get(
    "/reports/churn-reasons",
    tags=["reports"],
    summary="Churn reasons over a period",
    description="Warnings resolved as churned in the period, by reason (those profile "
    "reported as churned included). Beijing days, `to` excluded.",
)
async def report_churn_reasons(
    session: Session, principal: Acting, period_from: PeriodFrom, period_to: PeriodTo
) -> ChurnReasonReport:
    return await service.churn_reason_report(session, principal, period_from, period_to)


# Who may call what (services/kit/access.py) where no gate above says: the scope of each
# read and change is the service's (reads: the team's; follow-ups: a manager their own).
ROUTE_ROLES: dict[tuple[str, str], tuple[Role, ...]] = {
    ("GET", "/warnings"): (*STAFF, Role.partner),  # partners: WarningRead.for_partner
    ("GET", "/warnings/{warning_id}"): (*STAFF, Role.partner),
    ("POST", "/warnings/{warning_id}/contacts"): STAFF,
    ("POST", "/subscribers/{msisdn}/contacts"): STAFF,
    ("POST", "/warnings/{warning_id}/resolve"): STAFF,
    ("GET", "/subscribers/{msisdn}/risk"): STAFF,
    ("GET", "/risk"): (*STAFF, Role.partner),  # numbers masked; by customer id
    ("GET", "/rules"): EVERYONE,
    ("GET", "/rules/{version}"): EVERYONE,
    ("GET", "/reports/open"): STAFF,
    ("GET", "/reports/retention"): STAFF,
    ("GET", "/reports/churn-reasons"): STAFF,
}

# What a partner's token must hold where a partner is admitted (the API key's scopes).
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/warnings"): Scope.warnings_read,
    ("GET", "/warnings/{warning_id}"): Scope.warnings_read,
    ("GET", "/risk"): Scope.warnings_read,
    ("POST", "/usage/batch"): Scope.usage_write,
    ("POST", "/detection/runs"): Scope.usage_write,
}
