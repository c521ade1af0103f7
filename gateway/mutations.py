"""The root mutations: every workflow the services offer, each answering a typed result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from gateway import apikeys
from gateway.access import STAFF, is_admin, needs
from gateway.errors import ServiceError
from gateway.types.care import AudienceListAdded, Campaign, CareTask
from gateway.types.common import (
    Info,
    build,
)
from gateway.types.complaint import Compensation, Complaint
from gateway.types.inputs import (
    AcknowledgeInput,
    AgreeInput,
    AlertInput,
    CampaignInput,
    CareTaskOutcome,
    ClarifyInput,
    CloseInput,
    CompensationInput,
    ComplaintInput,
    ContactInput,
    CustomerInput,
    CustomerPatch,
    ManagerInput,
    ManagerPatch,
    TeamInput,
    TeamPatch,
    TrackInput,
    WarningContactInput,
    WarningResolution,
    body_of,
)
from gateway.types.partners import ApiKeyInfo, CreatedApiKey, UsageAccepted, UsageInput
from gateway.types.profile import ContactEntry, Customer, Manager, Team
from gateway.types.results import Forbidden, ProblemType, attempt, problem_of
from gateway.types.warning import ChurnWarning
from services.kit.db import session_scope
from services.kit.errors import DomainError

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
TeamResult = Annotated[Team | ProblemType, strawberry.union("TeamResult", description=DONE_OR_WHY)]
ManagerResult = Annotated[
    Manager | ProblemType, strawberry.union("ManagerResult", description=DONE_OR_WHY)
]
AudienceListResult = Annotated[
    AudienceListAdded | ProblemType,
    strawberry.union("AudienceListResult", description=DONE_OR_WHY),
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
        call = ctx.service("warning").create(ctx.caller, "/usage/batch", {"rows": body_of(rows)})
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
        if not is_admin(ctx.caller.principal):
            return Forbidden(code="forbidden", message="仅管理员可管理 API 密钥")
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
        return CreatedApiKey(key=key, api_key=build(ApiKeyInfo, row.model_dump(mode="json")))

    @strawberry.mutation(description="Admins: revoke an API key at once.", extensions=STAFF)
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokedApiKeyResult:
        ctx = info.context
        if not is_admin(ctx.caller.principal):
            return Forbidden(code="forbidden", message="仅管理员可管理 API 密钥")
        try:
            async with session_scope(ctx.clients.sessionmaker) as session:
                row = await apikeys.revoke(session, str(id))
        except DomainError as exc:
            return _problem_of_domain(exc)
        return build(ApiKeyInfo, row.model_dump(mode="json"))

    @strawberry.mutation(description="File a new customer (客户建档).", extensions=STAFF)
    async def create_customer(self, info: Info, customer: CustomerInput) -> CustomerResult:
        ctx = info.context
        call = ctx.service("profile").create(ctx.caller, "/customers", body_of(customer))
        return await attempt(call, lambda row: build(Customer, row))

    @strawberry.mutation(description="A new team (admins).", extensions=STAFF)
    async def create_team(self, info: Info, team: TeamInput) -> TeamResult:
        ctx = info.context
        call = ctx.service("profile").create(ctx.caller, "/teams", body_of(team))
        return await attempt(call, lambda row: build(Team, row))

    @strawberry.mutation(description="Change a team (admins).", extensions=STAFF)
    async def update_team(self, info: Info, id: strawberry.ID, patch: TeamPatch) -> TeamResult:
        ctx = info.context
        call = ctx.service("profile").request(
            ctx.caller, "PATCH", f"/teams/{id}", body=body_of(patch)
        )
        return await attempt(call, lambda row: build(Team, row))

    @strawberry.mutation(description="A new manager (admins, supervisors).", extensions=STAFF)
    async def create_manager(self, info: Info, manager: ManagerInput) -> ManagerResult:
        ctx = info.context
        call = ctx.service("profile").create(ctx.caller, "/managers", body_of(manager))
        return await attempt(call, lambda row: build(Manager, row))

    @strawberry.mutation(description="Change a manager: name, phone, team.", extensions=STAFF)
    async def update_manager(
        self, info: Info, id: strawberry.ID, patch: ManagerPatch
    ) -> ManagerResult:
        ctx = info.context
        call = ctx.service("profile").request(
            ctx.caller, "PATCH", f"/managers/{id}", body=body_of(patch)
        )
        return await attempt(call, lambda row: build(Manager, row))

    @strawberry.mutation(
        description="A manager leaves: their customers go to `reassignTo` (or unassigned).",
        extensions=STAFF,
    )
    async def manager_leaves(
        self, info: Info, id: strawberry.ID, reassign_to: str | None = None
    ) -> ManagerResult:
        ctx = info.context
        body = {"reassign_to": reassign_to} if reassign_to else {}
        call = ctx.service("profile").post(ctx.caller, f"/managers/{id}/leave", body)
        return await attempt(call, lambda _: _reread_manager(info, id))

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
        call = ctx.service("profile").create(
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
        call = ctx.service("warning").create(
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
        call = ctx.service("complaint").create(ctx.caller, "/complaints", body_of(complaint))
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

    @strawberry.mutation(description="Another handler (supervisors).", extensions=STAFF)
    async def reassign_complaint(
        self, info: Info, id: strawberry.ID, version: int, handler_id: str
    ) -> ComplaintResult:
        body = {"version": version, "handler_id": handler_id}
        return await _complaint_step(info, id, "reassign", body)

    @strawberry.mutation(description="Reopen a closed complaint (within 7 days).", extensions=STAFF)
    async def reopen_complaint(
        self, info: Info, id: strawberry.ID, version: int, notes: str = ""
    ) -> ComplaintResult:
        return await _complaint_step(info, id, "reopen", {"version": version, "notes": notes})

    @strawberry.mutation(
        description="Ask for a compensation (补偿); the amount decides who approves.",
        extensions=STAFF,
    )
    async def request_compensation(
        self, info: Info, complaint_id: strawberry.ID, compensation: CompensationInput
    ) -> CompensationResult:
        ctx = info.context
        call = ctx.service("complaint").create(
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
        call = ctx.service("care").create(ctx.caller, "/campaigns", body_of(campaign))
        return await attempt(call, lambda row: build(Campaign, row))

    @strawberry.mutation(
        description="Upload numbers to a list campaign's audience (名单); each is checked.",
        extensions=STAFF,
    )
    async def add_to_audience_list(
        self, info: Info, id: strawberry.ID, msisdns: list[str]
    ) -> AudienceListResult:
        ctx = info.context
        call = ctx.service("care").create(
            ctx.caller, f"/campaigns/{id}/audience-list", {"msisdns": msisdns}
        )
        return await attempt(call, lambda row: build(AudienceListAdded, row))

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
        call = ctx.service("care").create(ctx.caller, "/alerts", body_of(alert))
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


def _problem_of_domain(exc: DomainError) -> ProblemType:
    """A problem found by the gateway itself, typed as a service's would be."""
    return problem_of(
        ServiceError("gateway", exc.status_code, exc.code, exc.message, field=exc.field)
    )


async def _reread_manager(info: Info, id: strawberry.ID) -> Manager:
    ctx = info.context
    return build(Manager, await ctx.service("profile").get(ctx.caller, f"/managers/{id}"))


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
