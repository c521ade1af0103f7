"""The one GraphQL schema over the four services."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway import apikeys
from gateway.access import STAFF, needs
from gateway.errors import ServiceError, ServiceUnavailable, graphql_error
from gateway.hardening import Exposure, MaskUnexpected
from gateway.limits import QueryLimits
from gateway.types.care import Campaign, CareTask
from gateway.types.common import (
    Connection,
    Info,
    build,
    build_all,
    connection,
    offset_cursor,
    offset_of,
)
from gateway.types.complaint import Compensation, Complaint
from gateway.types.enums import CampaignState
from gateway.types.health import ServiceHealth
from gateway.types.inputs import (
    AcknowledgeInput,
    AgreeInput,
    AlertInput,
    CampaignInput,
    CareTaskOutcome,
    ClarifyInput,
    CloseInput,
    CompensationInput,
    ComplaintFilter,
    ComplaintInput,
    ContactInput,
    CustomerFilter,
    CustomerPatch,
    TrackInput,
    WarningContactInput,
    WarningFilter,
    WarningResolution,
    body_of,
)
from gateway.types.partners import ApiKeyInfo, CreatedApiKey, UsageAccepted, UsageInput
from gateway.types.profile import ContactEntry, Customer
from gateway.types.reports import (
    ReachReport,
    ReadAuditEntry,
    RetentionRate,
    SlaCompliance,
    WarningOutcomes,
)
from gateway.types.results import Forbidden, ProblemType, attempt, problem_of
from gateway.types.viewer import Viewer, WorkQueue
from gateway.types.warning import ChurnWarning
from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.db import session_scope
from services.kit.errors import DomainError


def _params(filters: Any) -> list[tuple[str, Any]]:
    """A filter input as query parameters (lists repeated)."""
    params: list[tuple[str, Any]] = []
    for name, value in (body_of(filters) if filters is not None else {}).items():
        if value is None:
            continue
        for one in value if isinstance(value, list) else [value]:
            params.append((name, str(one).lower() if isinstance(one, bool) else one))
    return params


async def _or_none(call: Any) -> Any:
    """A read by id: what does not exist (or is not the caller's to see) is ``null``."""
    try:
        return await call
    except ServiceError as exc:
        if exc.status == 404:
            return None
        raise


@strawberry.type
class Query:
    @strawberry.field(description="Readiness of every service, asked over HTTP just now.")
    async def health(self, info: Info) -> list[ServiceHealth]:
        clients = info.context.clients.services.values()
        results = await asyncio.gather(*(c.readiness() for c in clients))
        return [ServiceHealth.from_readiness(r) for r in results]

    @strawberry.field(description="Admins: partners' API keys, newest first.", extensions=STAFF)
    async def api_keys(self, info: Info, partner_id: str | None = None) -> list[ApiKeyInfo]:
        ctx = info.context
        if _admins_only(ctx.caller.principal) is not None:
            raise GraphQLError("仅管理员可查看 API 密钥", extensions={"code": "FORBIDDEN"})
        async with session_scope(ctx.clients.sessionmaker) as session:
            rows = await apikeys.listed(session, partner_id)
        return [build(ApiKeyInfo, r.model_dump()) for r in rows]

    @strawberry.field(
        description="Admins: unmasked reads of personal data, newest first.", extensions=STAFF
    )
    async def read_audit(
        self,
        info: Info,
        user_id: str | None = None,
        msisdn: str | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[ReadAuditEntry]:
        ctx = info.context
        params: list[tuple[str, Any]] = [("limit", ctx.page_size(first))]
        params += [(k, v) for k, v in (("user_id", user_id), ("msisdn", msisdn)) if v]
        if after is not None:
            params.append(("cursor", after))
        page = await ctx.service("profile").get(ctx.caller, "/audit/reads", params=params)
        return connection(build_all(ReadAuditEntry, page["items"]), page["next_cursor"])

    @strawberry.field(description="Who I am: user id, role and team.")
    def viewer(self, info: Info) -> Viewer:
        caller = info.context.caller
        p = caller.principal
        return Viewer(user_id=p.user_id, role=p.role, team_id=p.team_id)

    @strawberry.field(
        description="One customer by mobile number (any usual form); null if not yours.",
        extensions=needs("customers:read"),
    )
    async def customer(self, info: Info, msisdn: str) -> Customer | None:
        ctx = info.context
        row = await _or_none(ctx.service("profile").get(ctx.caller, f"/customers/{msisdn}"))
        return build(Customer, row) if row else None

    @strawberry.field(
        description="Customers I may see, with filters; `first` at most 100.",
        extensions=needs("customers:read"),
    )
    async def customers(
        self,
        info: Info,
        filter: CustomerFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[Customer]:
        ctx = info.context
        params = [*_params(filter), ("limit", ctx.page_size(first))]
        if after is not None:
            params.append(("cursor", after))
        page = await ctx.service("profile").get(ctx.caller, "/customers", params=params)
        return connection(build_all(Customer, page["items"]), page["next_cursor"])

    @strawberry.field(
        description="Churn warnings I may see, highest risk first.",
        extensions=needs("warnings:read"),
    )
    async def warnings(
        self,
        info: Info,
        filter: WarningFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[ChurnWarning]:
        return await _offset_page(
            info, "warning", "/warnings", _params(filter), first, after, ChurnWarning
        )

    @strawberry.field(
        description="One warning by id; null if not yours.", extensions=needs("warnings:read")
    )
    async def warning(self, info: Info, id: strawberry.ID) -> ChurnWarning | None:
        ctx = info.context
        row = await _or_none(ctx.service("warning").get(ctx.caller, f"/warnings/{int(id)}"))
        return build(ChurnWarning, row) if row else None

    @strawberry.field(
        description="Complaints I may see, newest first.", extensions=needs("complaints:read")
    )
    async def complaints(
        self,
        info: Info,
        filter: ComplaintFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[Complaint]:
        ctx = info.context
        params = [*_params(filter), ("limit", ctx.page_size(first))]
        if after is not None:
            params.append(("cursor", after))
        page = await ctx.service("complaint").get(ctx.caller, "/complaints", params=params)
        return connection(build_all(Complaint, page["items"]), page["next_cursor"])

    @strawberry.field(
        description="One complaint by id; null if not yours.", extensions=needs("complaints:read")
    )
    async def complaint(self, info: Info, id: strawberry.ID) -> Complaint | None:
        ctx = info.context
        row = await _or_none(ctx.service("complaint").get(ctx.caller, f"/complaints/{int(id)}"))
        return build(Complaint, row) if row else None

    @strawberry.field(description="Care campaigns I may see, newest first.", extensions=STAFF)
    async def campaigns(
        self,
        info: Info,
        status: CampaignState | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[Campaign]:
        params = [("status", status.value)] if status is not None else []
        return await _offset_page(info, "care", "/campaigns", params, first, after, Campaign)

    @strawberry.field(description="One campaign by id; null if not yours.", extensions=STAFF)
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign | None:
        ctx = info.context
        row = await _or_none(ctx.service("care").get(ctx.caller, f"/campaigns/{id}"))
        return build(Campaign, row) if row else None

    @strawberry.field(
        description="My work today: warnings, care tasks, complaints (one call).", extensions=STAFF
    )
    async def my_work_queue(self, info: Info, first: int = 20) -> WorkQueue:
        ctx = info.context
        me = ctx.caller.principal.user_id
        size = ctx.page_size(first)
        warnings, tasks, complaints = await asyncio.gather(
            ctx.service("warning").get(
                ctx.caller, "/warnings", params={"manager_id": me, "limit": size}
            ),
            ctx.service("care").get(
                ctx.caller,
                "/tasks",
                params={"manager_id": me, "due_by": clock.today().isoformat(), "limit": size},
            ),
            ctx.service("complaint").get(ctx.caller, "/complaints/queue", params={"limit": size}),
        )
        return WorkQueue(
            warnings=build_all(ChurnWarning, warnings),
            care_tasks=build_all(CareTask, tasks),
            complaints=build_all(Complaint, complaints["items"]),
        )

    @strawberry.field(
        description="Service reach rate (服务到达率) for a period and group.", extensions=STAFF
    )
    async def reach_report(
        self,
        info: Info,
        period_from: date,
        period_to: date,
        group_by: str = "manager",
        team_id: str | None = None,
    ) -> ReachReport:
        ctx = info.context
        params: dict[str, Any] = {
            "from": period_from.isoformat(),
            "to": period_to.isoformat(),
            "group_by": group_by,
        }
        if team_id is not None:
            params["team_id"] = team_id
        row = await ctx.service("profile").get(ctx.caller, "/reports/reach", params=params)
        return build(ReachReport, row)

    @strawberry.field(
        description="Retention rate (保有率) of the VIP base over a period.", extensions=STAFF
    )
    async def retention_rate(
        self, info: Info, period_from: date, period_to: date, team_id: str | None = None
    ) -> RetentionRate:
        ctx = info.context
        params = {"from": period_from.isoformat(), "to": period_to.isoformat()}
        if team_id is not None:
            params["team_id"] = team_id
        row = await ctx.service("profile").get(ctx.caller, "/reports/retention", params=params)
        return build(RetentionRate, row)

    @strawberry.field(
        description="Warning outcomes (挽留成功率) by action and signal.", extensions=STAFF
    )
    async def warning_outcomes(
        self, info: Info, period_from: date, period_to: date
    ) -> WarningOutcomes:
        ctx = info.context
        params = {"from": period_from.isoformat(), "to": period_to.isoformat()}
        row = await ctx.service("warning").get(ctx.caller, "/reports/retention", params=params)
        return build(WarningOutcomes, row)

    @strawberry.field(
        description="Complaint SLA compliance (SLA 达成率) by group.", extensions=STAFF
    )
    async def sla_compliance(
        self, info: Info, period_from: date, period_to: date, group_by: str = "team"
    ) -> SlaCompliance:
        ctx = info.context
        # The complaint service counts whole days up to and including `end`.
        params = {
            "start": period_from.isoformat(),
            "end": period_to.isoformat(),
            "group_by": group_by,
        }
        row = await ctx.service("complaint").get(ctx.caller, "/reports", params=params)
        return build(SlaCompliance, row)


async def _offset_page(
    info: Info,
    service: str,
    path: str,
    params: list[tuple[str, Any]],
    first: int,
    after: str | None,
    cls: type[Any],
) -> Connection[Any]:
    """A page of an offset-paged list: one more row than asked tells whether more follow."""
    ctx = info.context
    size = ctx.page_size(first)
    offset = offset_of(after)
    rows = await ctx.service(service).get(
        ctx.caller, path, params=[*params, ("limit", size + 1), ("offset", offset)]
    )
    more = len(rows) > size
    return connection(build_all(cls, rows[:size]), offset_cursor(offset + size) if more else None)


DONE_OR_WHY = "What the mutation made or changed, or the problem that stopped it."

CustomerResult = Annotated[
    Customer | ProblemType, strawberry.union("CustomerResult", description=DONE_OR_WHY)
]
ContactResult = Annotated[
    ContactEntry | ProblemType, strawberry.union("ContactResult", description=DONE_OR_WHY)
]
WarningResult = Annotated[
    ChurnWarning | ProblemType, strawberry.union("WarningResult", description=DONE_OR_WHY)
]
ComplaintResult = Annotated[
    Complaint | ProblemType, strawberry.union("ComplaintResult", description=DONE_OR_WHY)
]
CompensationResult = Annotated[
    Compensation | ProblemType, strawberry.union("CompensationResult", description=DONE_OR_WHY)
]
CampaignResult = Annotated[
    Campaign | ProblemType, strawberry.union("CampaignResult", description=DONE_OR_WHY)
]
ApiKeyResult = Annotated[
    CreatedApiKey | ProblemType, strawberry.union("ApiKeyResult", description=DONE_OR_WHY)
]
RevokedApiKeyResult = Annotated[
    ApiKeyInfo | ProblemType, strawberry.union("RevokedApiKeyResult", description=DONE_OR_WHY)
]
UsageResult = Annotated[
    UsageAccepted | ProblemType, strawberry.union("UsageResult", description=DONE_OR_WHY)
]
CareTaskResult = Annotated[
    CareTask | ProblemType, strawberry.union("CareTaskResult", description=DONE_OR_WHY)
]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Send usage rows (partners with usage:write, operators).",
        extensions=needs("usage:write"),
    )
    async def submit_usage(self, info: Info, rows: list[UsageInput]) -> UsageResult:
        ctx = info.context
        call = ctx.service("warning").post(ctx.caller, "/usage/batch", {"rows": body_of(rows)})
        return await attempt(call, lambda answer: build(UsageAccepted, answer))

    @strawberry.mutation(
        description="Admins: a new API key for a partner's system.", extensions=STAFF
    )
    async def create_api_key(
        self,
        info: Info,
        partner_id: str,
        name: str,
        scopes: list[str],
        expires_at: datetime | None = None,
    ) -> ApiKeyResult:
        ctx = info.context
        if (problem := _admins_only(ctx.caller.principal)) is not None:
            return problem
        try:
            async with session_scope(ctx.clients.sessionmaker) as session:
                row, key = await apikeys.create(
                    session,
                    partner_id=partner_id,
                    name=name,
                    scopes=scopes,
                    created_by=ctx.caller.principal.user_id,
                    expires_at=expires_at,
                )
        except DomainError as exc:
            return _problem_of_domain(exc)
        return CreatedApiKey(key=key, api_key=build(ApiKeyInfo, row.model_dump()))

    @strawberry.mutation(description="Admins: revoke an API key at once.", extensions=STAFF)
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokedApiKeyResult:
        ctx = info.context
        if (problem := _admins_only(ctx.caller.principal)) is not None:
            return problem
        try:
            async with session_scope(ctx.clients.sessionmaker) as session:
                row = await apikeys.revoke(session, str(id))
        except DomainError as exc:
            return _problem_of_domain(exc)
        return build(ApiKeyInfo, row.model_dump())

    @strawberry.mutation(
        description="Change a customer's archive; `version` is the one you read.", extensions=STAFF
    )
    async def update_customer(
        self, info: Info, msisdn: str, version: int, patch: CustomerPatch
    ) -> CustomerResult:
        ctx = info.context
        call = ctx.service("profile").request(
            ctx.caller, "PATCH", f"/customers/{msisdn}", body={**body_of(patch), "version": version}
        )
        return await attempt(call, lambda row: build(Customer, row))

    @strawberry.mutation(
        description="Record a contact in the customer's contact log.", extensions=STAFF
    )
    async def log_contact(self, info: Info, msisdn: str, contact: ContactInput) -> ContactResult:
        ctx = info.context
        call = ctx.service("profile").post(
            ctx.caller, f"/customers/{msisdn}/contacts", body_of(contact)
        )
        return await attempt(call, lambda row: build(ContactEntry, row))

    @strawberry.mutation(
        description="A follow-up contact on a warning (跟进): it moves to in progress.",
        extensions=STAFF,
    )
    async def follow_up_warning(
        self, info: Info, id: strawberry.ID, contact: WarningContactInput
    ) -> WarningResult:
        ctx = info.context
        call = ctx.service("warning").post(
            ctx.caller, f"/warnings/{int(id)}/contacts", body_of(contact)
        )
        return await attempt(call, lambda _: _reread_warning(info, id))

    @strawberry.mutation(description="How a warning ended: retained or churned.", extensions=STAFF)
    async def resolve_warning(
        self, info: Info, id: strawberry.ID, resolution: WarningResolution
    ) -> WarningResult:
        ctx = info.context
        call = ctx.service("warning").post(
            ctx.caller, f"/warnings/{int(id)}/resolve", body_of(resolution)
        )
        return await attempt(call, lambda row: build(ChurnWarning, row))

    @strawberry.mutation(
        description="Open a complaint ticket (投诉登记); its SLA clocks start.", extensions=STAFF
    )
    async def open_complaint(self, info: Info, complaint: ComplaintInput) -> ComplaintResult:
        ctx = info.context
        call = ctx.service("complaint").post(ctx.caller, "/complaints", body_of(complaint))
        return await attempt(call, lambda row: build(Complaint, row))

    @strawberry.mutation(description="Step 1 of the handling flow: 情绪认同.", extensions=STAFF)
    async def acknowledge_complaint(
        self, info: Info, id: strawberry.ID, step: AcknowledgeInput
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "acknowledge", step)

    @strawberry.mutation(description="Step 2: 事实澄清.", extensions=STAFF)
    async def clarify_complaint(
        self, info: Info, id: strawberry.ID, step: ClarifyInput
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "clarify", step)

    @strawberry.mutation(description="Step 3: 方案讨论, 确认共识.", extensions=STAFF)
    async def agree_complaint(
        self, info: Info, id: strawberry.ID, step: AgreeInput
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "agree", step)

    @strawberry.mutation(description="Step 4: 执行跟踪.", extensions=STAFF)
    async def track_complaint(
        self, info: Info, id: strawberry.ID, step: TrackInput
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "track", step)

    @strawberry.mutation(
        description="Close the complaint with the customer's satisfaction.", extensions=STAFF
    )
    async def close_complaint(
        self, info: Info, id: strawberry.ID, step: CloseInput
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "close", step)

    @strawberry.mutation(
        description="Ask for a compensation (补偿); the amount decides who approves.",
        extensions=STAFF,
    )
    async def request_compensation(
        self, info: Info, complaint_id: strawberry.ID, compensation: CompensationInput
    ) -> CompensationResult:
        ctx = info.context
        call = ctx.service("complaint").post(
            ctx.caller, f"/complaints/{int(complaint_id)}/compensations", body_of(compensation)
        )
        return await attempt(call, lambda row: build(Compensation, row))

    @strawberry.mutation(description="Approve or reject a compensation request.", extensions=STAFF)
    async def decide_compensation(
        self, info: Info, id: strawberry.ID, approve: bool, reason: str = ""
    ) -> CompensationResult:
        ctx = info.context
        verb = "approve" if approve else "reject"
        call = ctx.service("complaint").post(
            ctx.caller, f"/compensations/{int(id)}/{verb}", {"reason": reason}
        )
        return await attempt(call, lambda row: build(Compensation, row))

    @strawberry.mutation(description="A new care campaign, in draft.", extensions=STAFF)
    async def create_campaign(self, info: Info, campaign: CampaignInput) -> CampaignResult:
        ctx = info.context
        call = ctx.service("care").post(ctx.caller, "/campaigns", body_of(campaign))
        return await attempt(call, lambda row: build(Campaign, row))

    @strawberry.mutation(
        description="Preview a draft: counts and sample texts; it moves to preview.",
        extensions=STAFF,
    )
    async def preview_campaign(self, info: Info, id: strawberry.ID) -> CampaignResult:
        return await _campaign_step(info, id, "preview")

    @strawberry.mutation(
        description="Approve a previewed campaign (not your own).", extensions=STAFF
    )
    async def approve_campaign(self, info: Info, id: strawberry.ID) -> CampaignResult:
        return await _campaign_step(info, id, "approve")

    @strawberry.mutation(description="Pause sending.", extensions=STAFF)
    async def pause_campaign(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> CampaignResult:
        return await _campaign_step(info, id, "pause", {"reason": reason} if reason else None)

    @strawberry.mutation(description="Continue sending where it stopped.", extensions=STAFF)
    async def resume_campaign(self, info: Info, id: strawberry.ID) -> CampaignResult:
        return await _campaign_step(info, id, "resume")

    @strawberry.mutation(description="Cancel: nothing more is sent.", extensions=STAFF)
    async def cancel_campaign(self, info: Info, id: strawberry.ID) -> CampaignResult:
        return await _campaign_step(info, id, "cancel")

    @strawberry.mutation(
        description="Post a regional alert SMS (typhoon, earthquake...).", extensions=STAFF
    )
    async def post_alert(self, info: Info, alert: AlertInput) -> CampaignResult:
        ctx = info.context
        call = ctx.service("care").post(ctx.caller, "/alerts", body_of(alert))
        return await attempt(call, lambda row: build(Campaign, row))

    @strawberry.mutation(
        description="Record what came of a care task's call or visit.", extensions=STAFF
    )
    async def complete_care_task(
        self, info: Info, id: strawberry.ID, outcome: CareTaskOutcome
    ) -> CareTaskResult:
        ctx = info.context
        call = ctx.service("care").post(ctx.caller, f"/tasks/{int(id)}/complete", body_of(outcome))
        return await attempt(call, lambda row: build(CareTask, row))


def _admins_only(principal: Principal) -> Forbidden | None:
    if principal.role is Role.admin:
        return None
    return Forbidden(code="forbidden", message="仅管理员可管理 API 密钥")


def _problem_of_domain(exc: DomainError) -> ProblemType:
    """A problem found by the gateway itself, typed as a service's would be."""
    return problem_of(
        ServiceError("gateway", exc.status_code, exc.code, exc.message, field=exc.field)
    )


async def _reread_warning(info: Info, id: strawberry.ID) -> ChurnWarning:
    ctx = info.context
    return build(ChurnWarning, await ctx.service("warning").get(ctx.caller, f"/warnings/{int(id)}"))


async def _complaint_step(
    info: Info, id: strawberry.ID, step: str, body: Any
) -> Complaint | ProblemType:
    ctx = info.context
    call = ctx.service("complaint").post(ctx.caller, f"/complaints/{int(id)}/{step}", body_of(body))
    return await attempt(call, lambda row: build(Complaint, row))


async def _campaign_step(
    info: Info, id: strawberry.ID, step: str, body: Any = None
) -> Campaign | ProblemType:
    ctx = info.context
    call = ctx.service("care").post(ctx.caller, f"/campaigns/{id}/{step}", body)
    return await attempt(call, lambda _: _reread_campaign(info, id))


async def _reread_campaign(info: Info, id: strawberry.ID) -> Campaign:
    ctx = info.context
    return build(Campaign, await ctx.service("care").get(ctx.caller, f"/campaigns/{id}"))


class ServiceErrors(SchemaExtension):
    """A service's failure on a field becomes that field's error entry with a stable code
    (``SERVICE_UNAVAILABLE`` and the service's name, ``FORBIDDEN``, ...)."""

    def on_execute(self):  # type: ignore[no-untyped-def]
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        for error in result.errors:
            original = error.original_error
            if isinstance(original, ServiceError | ServiceUnavailable):
                mapped = graphql_error(original)
                error.message = mapped.message
                error.extensions = mapped.extensions


class ServiceCalls(SchemaExtension):
    """``extensions.serviceCalls`` of every answer: the calls it cost per service, so a
    client (and the no-N+1 test) sees what a query costs."""

    def get_results(self) -> dict[str, Any]:
        caller = self.execution_context.context.__dict__.get("caller")
        return {"serviceCalls": dict(caller.calls)} if caller is not None else {}


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[
        # The edge first: limits before parsing and validation (gateway/limits.py), then
        # what production hides (gateway/hardening.py).
        QueryLimits,
        Exposure,
        ServiceErrors,
        ServiceCalls,
        MaskUnexpected,
    ],
)
