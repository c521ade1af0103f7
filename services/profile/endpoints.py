"""HTTP routes of the profile service: parse, call the service, shape the answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status

from services.kit.app import Session
from services.kit.auth import Acting, Principal
from services.kit.errors import InvalidInput
from services.kit.masking import mask_msisdn, sees_numbers
from services.kit.params import IdsQuery, MsisdnsQuery
from services.kit.periods import FROM_DESCRIPTION, TO_DESCRIPTION
from services.profile import service
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
    BillingEntry,
    BillingResult,
    ContactCreate,
    ContactPage,
    ContactRead,
    CustomerCreate,
    CustomerPage,
    CustomerRead,
    CustomerUpdate,
    ImportSummary,
    ManagerCreate,
    ManagerLeave,
    ManagerRead,
    ManagerUpdate,
    ReachReport,
    RecomputeSummary,
    TeamCreate,
    TeamRead,
    TeamUpdate,
)
from services.profile.validation import normalise_region

router = APIRouter(tags=["profile"])

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]


def present(customer: Customer, manager: Manager | None, principal: Principal) -> CustomerRead:
    read = CustomerRead.model_validate(
        {
            **customer.model_dump(),
            "team_id": service.team_of(manager),
            "manager_name": manager.name if manager is not None else None,
            "honorific": service.honorific(customer.name, str(customer.gender)),
        }
    )
    if not sees_numbers(principal):
        read.msisdn = mask_msisdn(read.msisdn)
    return read


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


@router.post("/customers", status_code=status.HTTP_201_CREATED, summary="Create a customer")
async def create_customer(
    data: CustomerCreate, session: Session, principal: Acting, response: Response
) -> CustomerRead:
    customer, manager = await service.create_customer(session, principal, data)
    response.headers["ETag"] = _etag(customer)
    response.headers["Location"] = f"/customers/{customer.msisdn}"
    return present(customer, manager, principal)


@router.get(
    "/customers",
    summary="List customers with filters (cursor pagination)",
    description="Customers you may see (a manager: their own and their team's; a supervisor: "
    "the team's) matching every filter given, by id. `msisdn` is repeatable: the batched "
    "read of up to 100 customers by number (the gateway's loader), answered as the usual "
    "page with those of them you may see; numbers you may not see or that are no customer "
    "are left out. Partners see numbers masked unless listed in KEEPWELL_PARTNERS_UNMASKED.",
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
        tag=(tag or "").strip() or None,
    )
    items, next_cursor = await service.list_customers(session, principal, filters, cursor, limit)
    return CustomerPage(items=[present(c, t, principal) for c, t in items], next_cursor=next_cursor)


@router.get("/customers/{msisdn}", summary="One customer's archive (ETag: its version)")
async def get_customer(
    msisdn: str, session: Session, principal: Acting, response: Response
) -> CustomerRead:
    customer, manager = await service.get_customer(session, principal, msisdn)
    response.headers["ETag"] = _etag(customer)
    return present(customer, manager, principal)


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
    return present(customer, manager, principal)


@router.get("/customers/{msisdn}/managers", summary="Who managed the customer, and when")
async def manager_history(msisdn: str, session: Session, principal: Acting) -> list[AssignmentRead]:
    rows = await service.assignment_history(session, principal, msisdn)
    return [AssignmentRead.model_validate(r) for r in rows]


def _contact(entry: ContactLog, msisdn: str, principal: Principal) -> ContactRead:
    shown = msisdn if sees_numbers(principal) else mask_msisdn(msisdn)
    return ContactRead.model_validate({**entry.model_dump(), "msisdn": shown})


@router.post(
    "/customers/{msisdn}/contacts",
    status_code=status.HTTP_201_CREATED,
    summary="Record a contact (a repeated source_ref answers 200 with the first entry)",
)
async def add_contact(
    msisdn: str, data: ContactCreate, session: Session, principal: Acting, response: Response
) -> ContactRead:
    entry, new = await service.add_contact(session, principal, msisdn, data)
    if not new:
        response.status_code = status.HTTP_200_OK
    return _contact(entry, service.parse_msisdn(msisdn), principal)


@router.get("/customers/{msisdn}/contacts", summary="The contact log, newest first")
async def list_contacts(
    msisdn: str, session: Session, principal: Acting, cursor: str | None = None, limit: Limit = 50
) -> ContactPage:
    rows, number, next_cursor = await service.list_contacts(
        session, principal, msisdn, cursor, limit
    )
    return ContactPage(
        items=[_contact(r, number, principal) for r in rows], next_cursor=next_cursor
    )


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


@router.post(
    "/customers/import",
    summary="Bulk upsert by number (CSV or JSON lines body); bad rows reported and skipped",
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


@router.post("/teams", status_code=status.HTTP_201_CREATED, summary="Create a team")
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


@router.post("/managers", status_code=status.HTTP_201_CREATED, summary="Create a manager")
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
