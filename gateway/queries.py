"""The root queries: reads, each a call to the service that owns the data."""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import json
from datetime import date, datetime
from typing import Any

import strawberry
from graphql import GraphQLError

from gateway import apikeys
from gateway.access import STAFF, is_admin, needs
from gateway.ahead import LookAhead
from gateway.errors import ServiceError
from gateway.types.audit import AuditEntry, AuditKind, ChangeAuditEntry
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
from gateway.types.complaint import Complaint
from gateway.types.enums import CampaignState
from gateway.types.health import ServiceHealth
from gateway.types.inputs import (
    ComplaintFilter,
    CustomerFilter,
    WarningFilter,
    body_of,
)
from gateway.types.partners import ApiKeyInfo
from gateway.types.profile import Customer, Manager, Team
from gateway.types.reports import (
    ReachReport,
    ReadAuditEntry,
    RetentionRate,
    SlaCompliance,
    WarningOutcomes,
)
from gateway.types.viewer import Viewer, WorkQueue
from gateway.types.warning import ChurnWarning, RuleSet
from services.kit import clock
from services.kit.config import SERVICES
from services.kit.cursors import encode_cursor
from services.kit.db import session_scope


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
        if not is_admin(ctx.caller.principal):
            raise GraphQLError("仅管理员可查看 API 密钥", extensions={"code": "FORBIDDEN"})
        async with session_scope(ctx.clients.sessionmaker) as session:
            rows = await apikeys.listed(session, partner_id)
        return [build(ApiKeyInfo, r.model_dump(mode="json")) for r in rows]

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

    @strawberry.field(
        description="Admins: who changed what through every service's API, and (READS) who "
        "was served personal data unmasked, one list newest first; `kind` null: both. "
        "`periodFrom` / `periodTo` are Beijing dates, `periodTo` excluded.",
        extensions=STAFF,
    )
    async def audit_log(
        self,
        info: Info,
        kind: AuditKind | None = None,
        user_id: str | None = None,
        period_from: date | None = None,
        period_to: date | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[AuditEntry]:
        ctx = info.context
        if not is_admin(ctx.caller.principal):
            raise GraphQLError("仅管理员可查看审计记录", extensions={"code": "FORBIDDEN"})
        filters = [("user_id", user_id), ("from", period_from), ("to", period_to)]
        return await _audit_page(
            info,
            [s for s in AUDIT_STREAMS if kind is None or s[0] is kind],
            [(k, str(v)) for k, v in filters if v is not None],
            ctx.page_size(first),
            after,
        )

    @strawberry.field(
        description="The churn detection rules in force (预警规则).", extensions=STAFF
    )
    async def rule_set(self, info: Info) -> RuleSet:
        ctx = info.context
        return build(RuleSet, await ctx.service("warning").get(ctx.caller, "/rules"))

    @strawberry.field(description="Teams (and their supervisors).", extensions=STAFF)
    async def teams(self, info: Info) -> list[Team]:
        ctx = info.context
        return build_all(Team, await ctx.service("profile").get(ctx.caller, "/teams"))

    @strawberry.field(
        description="Managers, active ones unless `includeInactive`.",
        extensions=[*STAFF, LookAhead()],
    )
    async def managers(
        self, info: Info, team_id: str | None = None, include_inactive: bool = False
    ) -> list[Manager]:
        ctx = info.context
        params: dict[str, Any] = {"include_inactive": str(include_inactive).lower()}
        if team_id is not None:
            params["team_id"] = team_id
        return build_all(
            Manager, await ctx.service("profile").get(ctx.caller, "/managers", params=params)
        )

    @strawberry.field(description="Who I am: user id, role and team.")
    def viewer(self, info: Info) -> Viewer:
        caller = info.context.caller
        p = caller.principal
        return Viewer(user_id=p.user_id, role=p.role, team_id=p.team_id)

    @strawberry.field(
        description="One customer by mobile number (any usual form) or by `id`: exactly one "
        "of them (`BAD_USER_INPUT` otherwise); null if not yours.",
        extensions=[*needs("customers:read"), LookAhead()],
    )
    async def customer(
        self, info: Info, msisdn: str | None = None, id: strawberry.ID | None = None
    ) -> Customer | None:
        ctx = info.context
        if (msisdn is None) == (id is None):
            raise GraphQLError(
                "customer：须给出 msisdn 或 id 其中之一",
                extensions={
                    "code": "BAD_USER_INPUT",
                    "field": "id" if id is not None else "msisdn",
                },
            )
        if id is not None:
            if not id.isdigit() or int(id) < 1:
                raise GraphQLError(
                    "id：须为客户编号（正整数）",
                    extensions={"code": "BAD_USER_INPUT", "field": "id"},
                )
            found: Customer | None = await ctx.loaders.customer_by_id.load(str(int(id)))
            return found
        row = await _or_none(ctx.service("profile").get(ctx.caller, f"/customers/{msisdn}"))
        return build(Customer, row) if row else None

    @strawberry.field(
        description="Customers I may see, with filters; `first` at most 100.",
        extensions=[*needs("customers:read"), LookAhead()],
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
        extensions=[*needs("warnings:read"), LookAhead()],
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
        description="One warning by id; null if not yours.",
        extensions=[*needs("warnings:read"), LookAhead()],
    )
    async def warning(self, info: Info, id: strawberry.ID) -> ChurnWarning | None:
        ctx = info.context
        row = await _or_none(ctx.service("warning").get(ctx.caller, f"/warnings/{int(id)}"))
        return build(ChurnWarning, row) if row else None

    @strawberry.field(
        description="Complaints I may see, newest first.",
        extensions=[*needs("complaints:read"), LookAhead()],
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
        description="One complaint by id; null if not yours.",
        extensions=[*needs("complaints:read"), LookAhead()],
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
        description="My work today: warnings, care tasks, complaints (one call).",
        extensions=[*STAFF, LookAhead()],
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


AUDIT_STREAMS: list[tuple[AuditKind, str, str]] = [
    *((AuditKind.CHANGES, service, "/audit/changes") for service in SERVICES),
    (AuditKind.READS, "profile", "/audit/reads"),
]
"""Every audit the log merges: (kind, service, route); each lists newest first by id."""


def _audit_positions(after: str | None) -> dict[str, str | None]:
    """Where each audit stands after the page ``after`` ended: a service's cursor, ``None``
    once it has nothing more; an audit not named has not been read yet."""
    if after is None:
        return {}
    try:
        positions = json.loads(base64.urlsafe_b64decode(after.encode()))
        if isinstance(positions, dict) and all(
            v is None or isinstance(v, str) for v in positions.values()
        ):
            return positions
    except ValueError:
        pass
    raise GraphQLError(
        "after：不是本接口给出的游标", extensions={"code": "BAD_USER_INPUT", "field": "after"}
    )


async def _audit_page(
    info: Info,
    streams: list[tuple[AuditKind, str, str]],
    filters: list[tuple[str, str]],
    size: int,
    after: str | None,
) -> Connection[Any]:
    """One page of several services' audits merged newest first: a page of ``size`` from
    each audit not yet exhausted, the newest ``size`` of them all, and a cursor that says
    where each audit stands (after the last of its rows the page showed)."""
    ctx = info.context
    positions = _audit_positions(after)
    keys = {f"{kind.value}:{service}": (kind, service, path) for kind, service, path in streams}
    reading = [key for key in keys if positions.get(key, "") is not None]

    async def page(key: str) -> dict[str, Any]:
        _, service, path = keys[key]
        params = [*filters, ("limit", size)]
        if positions.get(key):
            params.append(("cursor", positions[key]))
        answer: dict[str, Any] = await ctx.service(service).get(ctx.caller, path, params=params)
        return answer

    pages = dict(zip(reading, await asyncio.gather(*map(page, reading)), strict=True))
    # Merged by the head of each audit, so the page takes a run from the top of each: where
    # that run ends is where the audit goes on.
    merged = heapq.merge(
        *([(key, row) for row in p["items"]] for key, p in pages.items()),
        key=lambda pair: datetime.fromisoformat(pair[1]["at"]),
        reverse=True,
    )
    shown = {key: 0 for key in pages}
    nodes: list[Any] = []
    for key, row in itertools.islice(merged, size):
        kind, service, _ = keys[key]
        nodes.append(
            build(ChangeAuditEntry, {**row, "service": service})
            if kind is AuditKind.CHANGES
            else build(ReadAuditEntry, row)
        )
        shown[key] += 1
    for key, p in pages.items():
        if shown[key] == len(p["items"]):
            positions[key] = p["next_cursor"]
        elif shown[key]:
            positions[key] = encode_cursor(int(p["items"][shown[key] - 1]["id"]))
    more = any(positions.get(key, "") is not None for key in keys)
    cursor = base64.urlsafe_b64encode(json.dumps(positions).encode()).decode() if more else None
    return connection(nodes, cursor)


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
