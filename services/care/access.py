"""Who may see and change which campaigns, recipients and tasks.

One rule per principal, applied inside the queries:
- admin and operator: everything;
- supervisor: their team's campaigns and the company-wide ones (automatic care, alerts);
  changes and approves only their team's; never approves a campaign they created;
- manager: reads what their supervisor reads; changes only the campaigns they created;
- partner: nothing in care.
Recipients and tasks are limited to the customers of the caller's team, whichever campaign
they come from: a company-wide campaign shows each team only its own customers. A manager
reads their team's tasks and closes only their own; a supervisor closes their team's.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.care.models import Campaign
from services.kit.auth import Principal, Role
from services.kit.errors import Forbidden


@dataclass(frozen=True)
class Scope:
    team_id: str | None = None  # None: every team
    manager_id: str | None = None  # tasks: closed only by this manager


def scope_of(principal: Principal) -> Scope:
    match principal.role:
        case Role.admin | Role.operator:
            return Scope()
        case Role.supervisor | Role.manager if principal.team_id:
            manager = principal.user_id if principal.role is Role.manager else None
            return Scope(team_id=principal.team_id, manager_id=manager)
        case Role.supervisor | Role.manager:
            raise Forbidden(f"a {principal.role.value} token must name the team")
    raise Forbidden(f"role {principal.role.value} may not use the care service")


def team_of_new_campaign(principal: Principal) -> str | None:
    return principal.team_id if principal.role in (Role.manager, Role.supervisor) else None


def can_read(principal: Principal, campaign: Campaign) -> bool:
    scope = scope_of(principal)
    return scope.team_id is None or campaign.team_id in (None, scope.team_id)


def check_change(principal: Principal, campaign: Campaign) -> None:
    scope = scope_of(principal)
    if scope.team_id is None:
        return
    if principal.role is Role.manager and campaign.created_by != principal.user_id:
        raise Forbidden("经理只能修改自己创建的活动")
    if campaign.team_id != scope.team_id:
        raise Forbidden("只能修改本团队的活动")


def check_approve(principal: Principal, campaign: Campaign) -> None:
    if campaign.created_by == principal.user_id:
        raise Forbidden("不能审批自己创建的活动：须由另一位主管审批")
    if principal.role is Role.admin:
        return
    if principal.role is not Role.supervisor or campaign.team_id is None:
        raise Forbidden("全公司范围的活动须由管理员审批")
    if campaign.team_id != principal.team_id:
        raise Forbidden("只能审批本团队的活动")
