"""Who is asking, and a manager's work for the day."""

from __future__ import annotations

import strawberry

from gateway.types.care import CareTask
from gateway.types.common import Info, later
from gateway.types.complaint import Complaint
from gateway.types.enums import Role
from gateway.types.profile import Manager, Team
from gateway.types.warning import ChurnWarning


@strawberry.type(description="The signed-in caller.")
class Viewer:
    user_id: str
    role: Role
    team_id: str | None

    @strawberry.field(description="Their team.")
    def team(self, info: Info) -> Team | None:
        if self.team_id is None:
            return None
        return later(info.context.loaders.team.load(self.team_id))

    @strawberry.field(description="Their manager record, when the caller is a manager.")
    def manager(self, info: Info) -> Manager | None:
        return later(info.context.loaders.manager.load(self.user_id))


@strawberry.type(description="A manager's work (今日工作): what to follow up first.")
class WorkQueue:
    warnings: list[ChurnWarning] = strawberry.field(
        description="Open warnings of my customers, highest risk first."
    )
    care_tasks: list[CareTask] = strawberry.field(description="My care tasks due by today.")
    complaints: list[Complaint] = strawberry.field(
        description="Complaints I handle, nearest to breach first."
    )
