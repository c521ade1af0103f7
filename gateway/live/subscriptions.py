"""The GraphQL subscriptions (graphql-transport-ws): live updates from the services' events.

Who sees what is decided twice, as for queries: the hub's filter here keeps what is not
the subscriber's out of their connection (a manager: warnings of the customers they
manage; supervisors and managers: their team's complaints; admins and operators: all),
and each update is then read from its service with the subscriber's identity, so the
service's own scoping and masking have the last word: what it will not show is not sent.
Partners subscribe to nothing (they have webhooks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterator
from datetime import datetime

import strawberry
from graphql import GraphQLError, OperationDefinitionNode, OperationType
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension

from gateway.clients.base import Caller
from gateway.context import Context
from gateway.errors import ServiceError
from gateway.live.contract import ESCALATED, SLA_BREACHED, WARNING_RAISED
from gateway.live.hub import Connection, LiveEvent
from gateway.types.care import Campaign
from gateway.types.common import Info, build
from gateway.types.complaint import Complaint
from gateway.types.enums import CampaignState, WarningSeverity
from gateway.types.warning import ChurnWarning
from services.kit.auth import Principal, Role
from services.kit.errors import Unauthorized

_SEVERITIES = list(WarningSeverity)
_DONE = {CampaignState.completed, CampaignState.cancelled}


@strawberry.type(description="A warning just raised (warning.raised).")
class WarningRaised:
    event_id: strawberry.ID
    occurred_at: datetime
    warning: ChurnWarning


@strawberry.type(description="A complaint past a due time (complaint.sla_breached).")
class SlaBreached:
    event_id: strawberry.ID
    occurred_at: datetime
    metric: str = strawberry.field(description="first_response, a step, or resolution.")
    due_at: datetime
    complaint: Complaint


@strawberry.type(description="A complaint escalated (complaint.escalated).")
class ComplaintEscalated:
    event_id: strawberry.ID
    occurred_at: datetime
    metric: str
    level: int = strawberry.field(
        description="1: the team's supervisor; 2: the escalation manager."
    )
    escalated_to: str | None
    due_at: datetime
    complaint: Complaint


def _connection(info: Info) -> Connection:
    live: Connection | None = info.context.live
    if live is None:
        raise GraphQLError(
            "订阅须经 WebSocket（graphql-transport-ws）", extensions={"code": "BAD_REQUEST"}
        )
    return live


def _principal(info: Info) -> Principal:
    ctx: Context = info.context
    if ctx.principal is None or ctx.principal.role is Role.partner:
        raise GraphQLError(
            "订阅须以员工身份登录（合作方请用 webhook）", extensions={"code": "FORBIDDEN"}
        )
    return ctx.principal


def _mine(principal: Principal) -> Callable[[dict[str, object]], bool]:
    """Whether an event's customer is the subscriber's: a manager's own customers, a
    supervisor's team, everyone's for admins and operators."""
    if principal.role is Role.manager:
        return lambda p: p.get("manager_id") == principal.user_id
    return _team(principal)


def _team(principal: Principal) -> Callable[[dict[str, object]], bool]:
    if principal.role in (Role.admin, Role.operator):
        return lambda p: True
    return lambda p: principal.team_id is not None and p.get("team_id") == principal.team_id


async def _events(
    info: Info, types: set[str], accepts: Callable[[dict[str, object]], bool]
) -> AsyncGenerator[tuple[LiveEvent, Caller], None]:
    """The hub's events of ``types`` that ``accepts`` lets through, each with a caller of
    its own (a fresh token: a connection outlives one) to read what it is about."""
    ctx: Context = info.context
    principal = _principal(info)
    live = _connection(info)
    live.open_subscription()
    try:
        async with live.hub.listen(lambda e: e.type in types and accepts(e.payload)) as listener:
            while True:
                event = await listener.queue.get()
                if listener.overflowed:
                    raise GraphQLError(
                        "订阅读取太慢，已结束；请重新订阅",
                        extensions={"code": "SUBSCRIBER_TOO_SLOW"},
                    )
                ctx.__dict__.pop("loaders", None)  # nested fields read fresh data each time
                caller = Caller(principal, ctx.settings, ctx.gateway.read_retries)
                ctx.__dict__["caller"] = caller
                yield event, caller
    finally:
        live.close_subscription()


async def _read(call: object) -> dict[str, object] | None:
    try:
        row: dict[str, object] = await call  # type: ignore[misc]
    except ServiceError as exc:
        if exc.status in (403, 404):
            return None
        raise
    return row


@strawberry.type(description="Live updates over graphql-transport-ws (a staff token at init).")
class Subscription:
    @strawberry.subscription(
        description="Warnings raised for my customers (a manager's own; a supervisor's team; "
        "all for admins and operators), from `minSeverity` up (default: high).",
    )
    async def warning_raised(
        self, info: Info, min_severity: WarningSeverity = WarningSeverity.high
    ) -> AsyncGenerator[WarningRaised, None]:
        principal = _principal(info)
        wanted = {s.value for s in _SEVERITIES[_SEVERITIES.index(min_severity) :]}
        mine = _mine(principal)
        async for event, caller in _events(
            info, {WARNING_RAISED}, lambda p: p.get("severity") in wanted and mine(p)
        ):
            warning_id = event.payload["warning_id"]
            row = await _read(
                info.context.service("warning").get(caller, f"/warnings/{warning_id}")
            )
            if row is not None:
                yield WarningRaised(
                    event_id=strawberry.ID(event.id),
                    occurred_at=datetime.fromisoformat(event.occurred_at),
                    warning=build(ChurnWarning, row),
                )

    @strawberry.subscription(
        description="Complaints of my team past a due time (all teams for admins and operators).",
    )
    async def sla_breached(self, info: Info) -> AsyncGenerator[SlaBreached, None]:
        async for event, caller in _events(info, {SLA_BREACHED}, _team(_principal(info))):
            complaint = await _complaint(info, caller, event)
            if complaint is not None:
                yield SlaBreached(
                    event_id=strawberry.ID(event.id),
                    occurred_at=datetime.fromisoformat(event.occurred_at),
                    metric=str(event.payload["metric"]),
                    due_at=datetime.fromisoformat(str(event.payload["due_at"])),
                    complaint=complaint,
                )

    @strawberry.subscription(
        description="Complaints of my team escalated (all teams for admins and operators).",
    )
    async def complaint_escalated(self, info: Info) -> AsyncGenerator[ComplaintEscalated, None]:
        async for event, caller in _events(info, {ESCALATED}, _team(_principal(info))):
            complaint = await _complaint(info, caller, event)
            if complaint is not None:
                p = event.payload
                yield ComplaintEscalated(
                    event_id=strawberry.ID(event.id),
                    occurred_at=datetime.fromisoformat(event.occurred_at),
                    metric=str(p["metric"]),
                    level=int(str(p["level"])),
                    escalated_to=None if p.get("escalated_to") is None else str(p["escalated_to"]),
                    due_at=datetime.fromisoformat(str(p["due_at"])),
                    complaint=complaint,
                )

    @strawberry.subscription(
        description="A campaign as its dispatch goes on: sent when its state or its figures "
        "change (looked at every few seconds), ending once it is completed or cancelled.",
    )
    async def campaign_progress(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[Campaign, None]:
        ctx: Context = info.context
        principal = _principal(info)
        live = _connection(info)
        live.open_subscription()
        try:
            seen: object = None
            while True:
                caller = Caller(principal, ctx.settings, ctx.gateway.read_retries)
                ctx.__dict__["caller"] = caller
                care = ctx.service("care")
                row = await _read(care.get(caller, f"/campaigns/{id}"))
                if row is None:
                    raise GraphQLError(f"找不到活动 {id}", extensions={"code": "NOT_FOUND"})
                report = await _read(care.get(caller, f"/campaigns/{id}/report"))
                now = (row.get("status"), report)
                if now != seen:
                    seen = now
                    campaign = build(Campaign, row)
                    yield campaign
                    if campaign.status in _DONE:
                        return
                await asyncio.sleep(ctx.gateway.live_poll_seconds)
        finally:
            live.close_subscription()


async def _complaint(info: Info, caller: Caller, event: LiveEvent) -> Complaint | None:
    complaint_id = int(str(event.payload["complaint_id"]))
    row = await _read(info.context.service("complaint").get(caller, f"/complaints/{complaint_id}"))
    return build(Complaint, row) if row is not None else None


async def admit(ctx: Context) -> None:
    """graphql-transport-ws's ``connection_init``: the person's bearer token in its payload
    (``{"Authorization": "Bearer ..."}``, as browsers cannot set a WebSocket's headers),
    then the connection's place within the limits. Refused: closed with 4403."""
    params = getattr(ctx, "connection_params", None) or {}
    header = next((v for k, v in params.items() if k.lower() == "authorization"), None)
    scheme, _, token = str(header or "").partition(" ")
    if ctx.live is None or scheme.lower() != "bearer" or not token.strip():
        raise ConnectionRejectionError(
            {"reason": "须在 connection_init 中提供 Authorization: Bearer <令牌>"}
        )
    try:
        principal = await ctx.clients.verifier.principal(token.strip())
    except Unauthorized as exc:
        raise ConnectionRejectionError({"reason": exc.message}) from exc
    if principal.role is Role.partner:
        raise ConnectionRejectionError({"reason": "合作方不能订阅（请用 webhook）"})
    refused = ctx.live.sign_in(principal.user_id)
    if refused is not None:
        raise ConnectionRejectionError({"reason": refused})
    ctx.principal = principal


class OverWebSocket(SchemaExtension):
    """A subscription runs over a WebSocket connection only: over HTTP it is refused before
    it is validated (strawberry would otherwise run it as a query and fail on its field)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (
            document is not None
            and context.pre_execution_errors is None
            and getattr(context.context, "live", None) is None
            and any(
                isinstance(d, OperationDefinitionNode) and d.operation is OperationType.SUBSCRIPTION
                for d in document.definitions
            )
        ):
            context.pre_execution_errors = [
                GraphQLError(
                    "订阅须经 WebSocket（graphql-transport-ws，/graphql）",
                    extensions={"code": "SUBSCRIPTION_NEEDS_WEBSOCKET"},
                )
            ]
        yield
