"""HTTP routes of the profile service: parse, call the service, shape the answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.access import EVERYONE, STAFF
from services.kit.app import Idempotent, Session
from services.kit.auth import Acting, Principal, Role, Scope
from services.kit.errors import InvalidInput
from services.kit.idempotency import IdempotentRoute
from services.kit.masking import mask_msisdn, sees_numbers
from services.kit.params import CustomerIdsQuery, IdsQuery, MsisdnsQuery
from services.kit.periods import FROM_DESCRIPTION, TO_DESCRIPTION
from services.profile import erasure, service
from services.profile.config import get_profile_settings
from services.profile.models import (
    ContactLog,
    Customer,
    CustomerStatus,
    Lifecycle,
    Manager,
    ServiceLevel,
    Tier,
)
from services.profile.repository import CustomerFilters
from services.profile.schemas import (
    AssignmentRead,
    AuditReadPage,
    BillingEntry,
    BillingResult,
    ContactCreate,
    ContactPage,
    ContactRead,
    CustomerCreate,
    CustomerPage,
    CustomerRead,
    CustomerUpdate,
    ErasureCreate,
    ErasureRead,
    ImportSummary,
    ManagerCreate,
    ManagerLeave,
    ManagerRead,
    ManagerUpdate,
    ReachReport,
    RecomputeSummary,
    RetentionReport,
    SnapshotRead,
    SnapshotTaken,
    TeamCreate,
    TeamRead,
    TeamUpdate,
)
from services.profile.validation import normalise_region

router = APIRouter(tags=["profile"], route_class=IdempotentRoute)

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]


class Audited:
    """What one request serves of customers' archives: masked for callers who may not see
    personal data, and each customer served unmasked recorded for the audit
    (:func:`service.audit_reads`, one INSERT per request)."""

    def __init__(self, principal: Principal, action: str) -> None:
        self.principal = principal
        self.action = action
        self.served: list[service.Served] = []

    def customer(self, customer: Customer, manager: Manager | None) -> CustomerRead:
        read = service.customer_read(customer, manager)
        fields = service.guard_personal(read, self.principal)
        assert customer.id is not None
        self.served.append((customer.id, customer.msisdn, fields))
        return read

    def contact(self, entry: ContactLog, msisdn: str) -> ContactRead:
        if sees_numbers(self.principal):
            self.served.append((entry.customer_id, msisdn, ["msisdn"]))
            shown = msisdn
        else:
            shown = mask_msisdn(msisdn)
        return ContactRead.model_validate({**entry.model_dump(), "msisdn": shown})

    async def record(self, session: AsyncSession) -> None:
        await service.audit_reads(session, self.principal, self.action, self.served)


def _etag(customer: Customer) -> str:
    return f'"{customer.version}"'


def _if_match(header: str | None) -> int | None:
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(
            'If-Match：须为读取客户时得到的 ETag，如 "3"', field="If-Match"
        ) from None


@router.post(
    "/customers",
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    dependencies=[Idempotent],
)
async def create_customer(
    data: CustomerCreate, session: Session, principal: Acting, response: Response
) -> CustomerRead:
    customer, manager = await service.create_customer(session, principal, data)
    response.headers["ETag"] = _etag(customer)
    response.headers["Location"] = f"/customers/{customer.msisdn}"
    audited = Audited(principal, "POST /customers")
    read = audited.customer(customer, manager)
    await audited.record(session)
    return read


@router.get(
    "/customers",
    summary="List customers with filters (cursor pagination)",
    description="Customers you may see (a manager: their own and their team's; a supervisor: "
    "the team's) matching every filter given, by id. `msisdn` is repeatable: the batched "
    "read of up to 100 customers by number (the gateway's loader), answered as the usual "
    "page with those of them you may see; numbers you may not see or that are no customer "
    "are left out. `id` is repeatable too: the same batched read by customer id (a partner's, "
    "who never holds a number; up to 100). Partners see numbers masked unless listed in "
    "KEEPWELL_PARTNERS_UNMASKED.",
)
async def list_customers(
    session: Session,
    principal: Acting,
    manager_id: str | None = None,
    team_id: str | None = None,
    tier: Tier | None = None,
    service_level: ServiceLevel | None = None,
    lifecycle: Lifecycle | None = None,
    region: str | None = None,
    customer_status: Annotated[CustomerStatus | None, Query(alias="status")] = None,
    birthday_month: Annotated[int | None, Query(ge=1, le=12)] = None,
    q: Annotated[str | None, Query(max_length=50, description="Part of the name")] = None,
    msisdn: MsisdnsQuery = None,
    id: CustomerIdsQuery = None,
    tag: Annotated[str | None, Query(max_length=50, description="Customers with this tag")] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> CustomerPage:
    if region is not None:
        try:
            region = normalise_region(region)
        except ValueError as exc:
            raise InvalidInput(f"region：{exc}", field="region") from None
    filters = CustomerFilters(
        manager_id=manager_id,
        team_id=team_id,
        tier=tier,
        service_level=service_level,
        lifecycle=lifecycle,
        region=region,
        status=customer_status,
        birthday_month=birthday_month,
        name_contains=q,
        msisdns=tuple(msisdn) if msisdn is not None else None,
        ids=tuple(id) if id is not None else None,
        tag=(tag or "").strip() or None,
    )
    items, next_cursor = await service.list_customers(session, principal, filters, cursor, limit)
    audited = Audited(principal, "GET /customers")
    page = CustomerPage(items=[audited.customer(c, m) for c, m in items], next_cursor=next_cursor)
    await audited.record(session)
    return page


@router.get("/customers/{msisdn}", summary="One customer's archive (ETag: its version)")
async def get_customer(
    msisdn: str, session: Session, principal: Acting, response: Response
) -> CustomerRead:
    customer, manager = await service.get_customer(session, principal, msisdn)
    response.headers["ETag"] = _etag(customer)
    audited = Audited(principal, "GET /customers/{msisdn}")
    read = audited.customer(customer, manager)
    await audited.record(session)
    return read


@router.patch(
    "/customers/{msisdn}",
    summary="Change some fields (send the version read: If-Match or `version`)",
    responses={428: {"description": "No version given"}},
)
async def update_customer(
    msisdn: str,
    data: CustomerUpdate,
    session: Session,
    principal: Acting,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> CustomerRead:
    customer, manager = await service.update_customer(
        session, principal, msisdn, data, _if_match(if_match)
    )
    response.headers["ETag"] = _etag(customer)
    audited = Audited(principal, "PATCH /customers/{msisdn}")
    read = audited.customer(customer, manager)
    await audited.record(session)
    return read


@router.get("/customers/{msisdn}/managers", summary="Who managed the customer, and when")
async def manager_history(msisdn: str, session: Session, principal: Acting) -> list[AssignmentRead]:
    rows = await service.assignment_history(session, principal, msisdn)
    return [AssignmentRead.model_validate(r) for r in rows]


@router.post(
    "/customers/{msisdn}/contacts",
    status_code=status.HTTP_201_CREATED,
    summary="Record a contact (a repeated source_ref answers 200 with the first entry)",
    dependencies=[Idempotent],
)
async def add_contact(
    msisdn: str, data: ContactCreate, session: Session, principal: Acting, response: Response
) -> ContactRead:
    entry, new = await service.add_contact(session, principal, msisdn, data)
    if not new:
        response.status_code = status.HTTP_200_OK
    audited = Audited(principal, "POST /customers/{msisdn}/contacts")
    read = audited.contact(entry, service.parse_msisdn(msisdn))
    await audited.record(session)
    return read


@router.get("/customers/{msisdn}/contacts", summary="The contact log, newest first")
async def list_contacts(
    msisdn: str, session: Session, principal: Acting, cursor: str | None = None, limit: Limit = 50
) -> ContactPage:
    rows, number, next_cursor = await service.list_contacts(
        session, principal, msisdn, cursor, limit
    )
    audited = Audited(principal, "GET /customers/{msisdn}/contacts")
    page = ContactPage(items=[audited.contact(r, number) for r in rows], next_cursor=next_cursor)
    await audited.record(session)
    return page


@router.get(
    "/reports/reach",
    summary="Service reach rate (服务到达率) for a period",
    description="The one definition of the service reach rate: of the VIP customers (tier "
    "diamond, gold or silver) of a manager, team or tier on file during the period, the share "
    "contacted at least once in it (any contact-log entry but a failed delivery: calls, "
    "visits, care messages delivered, care tasks and warning follow-ups). `rate` = reached / "
    "customers. Beijing days; `to` is the day after the last.",
)
async def reach_report(
    session: Session,
    principal: Acting,
    period_from: Annotated[date, Query(alias="from", description=FROM_DESCRIPTION)],
    period_to: Annotated[date, Query(alias="to", description=TO_DESCRIPTION)],
    group_by: Literal["manager", "team", "tier"] = "manager",
    team_id: str | None = None,
    manager_id: str | None = None,
    tier: Tier | None = None,
) -> ReachReport:
    return await service.reach_report(
        session, principal, period_from, period_to, group_by, team_id, manager_id, tier
    )


RETENTION_DESCRIPTION = (
    "The one definition of the VIP retention rate (保有率). Base: the customers recorded as "
    "active in the snapshot (拍照) of `from`, or of the latest day before it that has one "
    "(`base_snapshot`); a snapshot holds every customer of tier diamond, gold or silver on "
    "file that day. Retained: those still **active VIPs** at `to`: status `active` (not "
    "churned) and tier diamond, gold or silver (a move between those tiers is kept, a "
    "downgrade to `none` is lost), as recorded in the snapshot of `to` if one exists, else "
    "in the live archive when `to` is today or later (`measured_at`). `rate` = retained / "
    "base. Rows per team and per manager are by the team and manager a customer had at the "
    "base snapshot. Managers and supervisors get their team's rows; operators and admins "
    "every team, or `team_id`'s. 422 `snapshot_missing` (field `from` or `to`) when no "
    "snapshot exists on or before `from`, or when `to` is a past day without one. "
    "`from` = 2026-10-01, `to` = 2027-01-01 is the fourth quarter of 2026: the base of "
    "1 October, measured at the start of 1 January."
)


@router.get(
    "/reports/retention",
    summary="VIP retention rate (保有率) between two snapshots",
    description=RETENTION_DESCRIPTION,
)
async def retention_report(
    session: Session,
    principal: Acting,
    period_from: Annotated[
        date, Query(alias="from", description="The base: its snapshot, or the latest before")
    ],
    period_to: Annotated[
        date,
        Query(
            alias="to",
            description="Measured at the start of this Beijing date (the day after the last "
            "day of the period): its snapshot, or the live archive from today on",
        ),
    ],
    team_id: str | None = None,
) -> RetentionReport:
    return await service.retention_report(session, principal, period_from, period_to, team_id)


@router.post(
    "/snapshots/{day}",
    status_code=status.HTTP_201_CREATED,
    summary="Take the VIP base snapshot (拍照) of a day now (admin, supervisor)",
    description="Records every VIP customer (tier diamond, gold or silver; active, or churned "
    "on `day` or later; created before the end of `day`) with tier, team, manager and status "
    "as the archive holds them now, in one transaction. A day taken already is not retaken: "
    "200 with `created` false. The worker takes the first of each month at 00:05 Beijing "
    "time. `day` may not be after today (Beijing).",
    responses={200: {"description": "Taken already; nothing changed"}},
    dependencies=[Idempotent],
)
async def take_snapshot(
    day: date, session: Session, principal: Acting, response: Response
) -> SnapshotTaken:
    taken = await service.take_snapshot_as(session, principal, day)
    if not taken.created:
        response.status_code = status.HTTP_200_OK
    return taken


@router.get("/snapshots", summary="VIP base snapshots taken, newest first")
async def list_snapshots(
    session: Session, principal: Acting, limit: Limit = 50
) -> list[SnapshotRead]:
    return await service.list_snapshots(session, principal, limit)


@router.post(
    "/customers/import",
    summary="Bulk upsert by number (CSV or JSON lines body); bad rows reported and skipped",
    max_body_size=get_profile_settings().import_max_body_bytes,
    dependencies=[Idempotent],
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "required": True,
        }
    },
)
async def import_customers(request: Request, session: Session, principal: Acting) -> ImportSummary:
    from services.profile import importer

    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    body = await request.body()
    return await importer.import_request(
        session,
        principal,
        body,
        content_type,
        get_profile_settings().import_max_rows_per_request,
    )


@router.put("/billing", summary="Upsert monthly billing summaries (month, spend) per customer")
async def put_billing(
    entries: list[BillingEntry], session: Session, principal: Acting
) -> BillingResult:
    return await service.load_billing(session, principal, entries)


@router.post("/tiers/recompute", summary="Run the monthly value recompute now (admin, operator)")
async def recompute_tiers(
    session: Session,
    principal: Acting,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
) -> RecomputeSummary:
    return await service.recompute_tiers(session, principal, month)


@router.get(
    "/audit/reads",
    summary="Unmasked reads of customers' personal data, newest first (admin)",
    description="One row per customer per request that served personal fields in full "
    "(`msisdn`, `family_notes`, custom attributes marked `personal`): who (user id, role, "
    "internal caller), which route, which customer, when, and the request id. Reads masked "
    "for the caller (partners without KEEPWELL_PARTNERS_UNMASKED) leave no row. `from` / "
    "`to` are Beijing dates, `to` excluded; either may be left out.",
)
async def list_read_audit(
    session: Session,
    principal: Acting,
    user_id: str | None = None,
    msisdn: Annotated[str | None, Query(description="Exact number (any usual form)")] = None,
    period_from: Annotated[date | None, Query(alias="from", description=FROM_DESCRIPTION)] = None,
    period_to: Annotated[date | None, Query(alias="to", description=TO_DESCRIPTION)] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> AuditReadPage:
    return await service.list_read_audit(
        session,
        principal,
        user_id=user_id,
        msisdn=msisdn,
        period_from=period_from,
        period_to=period_to,
        cursor=cursor,
        limit=limit,
    )


# --- personal data on request (PIPL) ------------------------------------------------------------


@router.post(
    "/erasures",
    status_code=status.HTTP_201_CREATED,
    summary="Ask for a customer's personal data to be erased (admin; another person approves)",
    description="Pending until approved by an admin other than the requester or by the "
    "supervisor of the customer's team (`POST /erasures/{id}/approve`). 409 "
    "`erasure_open` while the customer has an unfinished one, `already_erased` after.",
    dependencies=[Idempotent],
)
async def request_erasure(data: ErasureCreate, session: Session, principal: Acting) -> ErasureRead:
    return erasure.read(await erasure.request_erasure(session, principal, data))


@router.get(
    "/erasures/{erasure_id}",
    summary="An erasure's record: who asked and approved, what each service confirmed",
)
async def get_erasure(erasure_id: int, session: Session, principal: Acting) -> ErasureRead:
    return erasure.read(await erasure.get_erasure(session, principal, erasure_id))


@router.post(
    "/erasures/{erasure_id}/approve",
    summary="Approve an erasure: the archive is anonymised now, the other services follow",
    description="Four eyes: an admin other than the requester, or the supervisor of the "
    "customer's team (403 for the requester). The archive is anonymised and "
    "`customer.erased` published in one transaction; `status` is `erasing` until warning, "
    "care and complaint have confirmed (`receipts`), then `completed`.",
)
async def approve_erasure(erasure_id: int, session: Session, principal: Acting) -> ErasureRead:
    return erasure.read(await erasure.approve_erasure(session, principal, erasure_id))


@router.get(
    "/exports/{msisdn}",
    summary="Profile's part of everything held about one customer (admin; access right)",
    description="The archive, the contact log, the manager history, billing and tier "
    "changes; audited as an unmasked read. `keepwell export` joins every service's part.",
)
async def export_customer(msisdn: str, session: Session, principal: Acting) -> dict[str, object]:
    return await erasure.export(session, principal, msisdn)


# --- teams and managers ------------------------------------------------------------------------


@router.get(
    "/teams",
    summary="All teams, or those asked for by id",
    description="Ordered by id. `id` is repeatable: the batched read of up to 100 teams "
    "(unknown ids are left out).",
)
async def list_teams(session: Session, principal: Acting, id: IdsQuery = None) -> list[TeamRead]:
    from services.profile import repository

    return [TeamRead.model_validate(t) for t in await repository.list_teams(session, id)]


@router.post(
    "/teams",
    status_code=status.HTTP_201_CREATED,
    summary="Create a team",
    dependencies=[Idempotent],
)
async def create_team(data: TeamCreate, session: Session, principal: Acting) -> TeamRead:
    return TeamRead.model_validate(await service.create_team(session, principal, data))


@router.get("/teams/{team_id}", summary="One team")
async def get_team(team_id: str, session: Session, principal: Acting) -> TeamRead:
    return TeamRead.model_validate(await service.get_team(session, team_id))


@router.patch("/teams/{team_id}", summary="Change a team")
async def update_team(
    team_id: str, data: TeamUpdate, session: Session, principal: Acting
) -> TeamRead:
    return TeamRead.model_validate(await service.update_team(session, principal, team_id, data))


@router.delete(
    "/teams/{team_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an empty team"
)
async def delete_team(team_id: str, session: Session, principal: Acting) -> None:
    await service.delete_team(session, principal, team_id)


@router.get(
    "/managers",
    summary="Managers (active ones unless include_inactive), or those asked for by id",
    description="Ordered by id. `id` is repeatable: the batched read of up to 100 managers "
    "(unknown ids are left out); combined with the other filters, so ask "
    "`include_inactive=true` to get a manager who has left. Partners see phone numbers "
    "masked unless listed in KEEPWELL_PARTNERS_UNMASKED.",
)
async def list_managers(
    session: Session,
    principal: Acting,
    team_id: str | None = None,
    include_inactive: bool = False,
    id: IdsQuery = None,
) -> list[ManagerRead]:
    from services.profile import repository

    rows = await repository.list_managers(session, team_id, include_inactive, id)
    return [_manager_read(m, principal) for m in rows]


def _manager_read(manager: Manager, principal: Principal) -> ManagerRead:
    read = ManagerRead.model_validate(manager)
    if not sees_numbers(principal):
        read.phone = mask_msisdn(read.phone)
    return read


@router.post(
    "/managers",
    status_code=status.HTTP_201_CREATED,
    summary="Create a manager",
    dependencies=[Idempotent],
)
async def create_manager(data: ManagerCreate, session: Session, principal: Acting) -> ManagerRead:
    return ManagerRead.model_validate(await service.create_manager(session, principal, data))


@router.get("/managers/{manager_id}", summary="One manager")
async def get_manager(manager_id: str, session: Session, principal: Acting) -> ManagerRead:
    return _manager_read(await service.get_manager(session, manager_id), principal)


@router.patch("/managers/{manager_id}", summary="Change a manager (name, phone, team)")
async def update_manager(
    manager_id: str, data: ManagerUpdate, session: Session, principal: Acting
) -> ManagerRead:
    manager = await service.update_manager(session, principal, manager_id, data)
    return ManagerRead.model_validate(manager)


@router.post(
    "/managers/{manager_id}/leave",
    summary="A manager leaves: customers move to reassign_to (or become unassigned)",
)
async def manager_leaves(
    manager_id: str, data: ManagerLeave, session: Session, principal: Acting
) -> dict[str, object]:
    manager, moved = await service.manager_leaves(session, principal, manager_id, data)
    return {"manager": ManagerRead.model_validate(manager), "customers_moved": moved}


# --- who may call what (services/kit/access.py); the service scopes rows further ----------------

_O, _S, _M, _P = Role.operator, Role.supervisor, Role.manager, Role.partner
ROUTE_ROLES: dict[tuple[str, str], tuple[Role, ...]] = {
    ("POST", "/customers"): (_O, _S),
    ("GET", "/customers"): EVERYONE,  # partners see numbers masked
    ("GET", "/customers/{msisdn}"): EVERYONE,
    ("PATCH", "/customers/{msisdn}"): STAFF,
    ("GET", "/customers/{msisdn}/managers"): EVERYONE,
    ("POST", "/customers/{msisdn}/contacts"): STAFF,
    ("GET", "/customers/{msisdn}/contacts"): EVERYONE,
    ("GET", "/reports/reach"): STAFF,
    ("GET", "/reports/retention"): STAFF,
    ("POST", "/snapshots/{day}"): (_S,),
    ("GET", "/snapshots"): STAFF,
    ("POST", "/customers/import"): (_O, _P),  # a partner's rows carry its fields only
    ("PUT", "/billing"): (_O,),
    ("POST", "/tiers/recompute"): (_O,),
    ("GET", "/audit/reads"): (),  # admin only
    ("POST", "/erasures"): (),  # admin only
    ("GET", "/erasures/{erasure_id}"): (_S,),  # the approving supervisor's team
    ("POST", "/erasures/{erasure_id}/approve"): (_S,),
    ("GET", "/exports/{msisdn}"): (),  # admin only
    ("GET", "/teams"): EVERYONE,
    ("POST", "/teams"): (_O,),
    ("GET", "/teams/{team_id}"): EVERYONE,
    ("PATCH", "/teams/{team_id}"): (_O,),
    ("DELETE", "/teams/{team_id}"): (_O,),
    ("GET", "/managers"): EVERYONE,  # partners see phones masked
    ("POST", "/managers"): (_O,),
    ("GET", "/managers/{manager_id}"): EVERYONE,
    ("PATCH", "/managers/{manager_id}"): (_O,),
    ("POST", "/managers/{manager_id}/leave"): (_O,),
}

# What a partner's token must hold on the routes it may call (the API key's scopes); the
# teams and managers are reference data every partner reads.
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/customers"): Scope.customers_read,
    ("GET", "/customers/{msisdn}"): Scope.customers_read,
    ("GET", "/customers/{msisdn}/managers"): Scope.customers_read,
    ("GET", "/customers/{msisdn}/contacts"): Scope.customers_read,
}
