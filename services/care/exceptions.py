"""Domain errors of the care service."""

from __future__ import annotations

from services.kit.errors import Conflict, Forbidden, InvalidInput, NotFound


class CampaignNotFound(NotFound):
    code = "campaign_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidTemplate(InvalidInput):
    code = "invalid_template"


class TaskNotFound(NotFound):
    code = "task_not_found"


class RuleNotFound(NotFound):
    code = "rule_not_found"


class NotYourTask(Forbidden):
    code = "not_your_task"


class AudienceConflict(Conflict):
    code = "audience_conflict"


class NotOnList(NotFound):
    code = "not_on_list"
