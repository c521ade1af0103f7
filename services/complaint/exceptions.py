"""Domain errors of the complaint service."""

from __future__ import annotations

from collections.abc import Sequence

from services.kit.errors import Conflict, ErrorBody, ErrorDetail, Forbidden, InvalidInput, NotFound


class ComplaintNotFound(NotFound):
    code = "complaint_not_found"


class CategoryNotFound(NotFound):
    code = "category_not_found"


class CompensationNotFound(NotFound):
    code = "compensation_not_found"


class PolicyNotFound(NotFound):
    code = "policy_not_found"


class CalendarNotFound(NotFound):
    code = "calendar_not_found"


class InvalidComplaint(InvalidInput):
    code = "invalid_complaint"


class InvalidTransition(Conflict):
    """A step from the wrong state: the body names the current state and the allowed next
    steps (``details``: one entry with code ``current_state``, one ``allowed`` per step)."""

    code = "invalid_transition"

    def __init__(self, message: str, *, state: str, allowed: Sequence[str]) -> None:
        listed = ", ".join(allowed) or "none"
        super().__init__(f"{message} (state: {state}; allowed next steps: {listed})", field="state")
        self.state = state
        self.allowed = list(allowed)

    def body(self) -> ErrorBody:
        details = [ErrorDetail(field="state", message=self.state, code="current_state")]
        details += [ErrorDetail(field="next", message=a, code="allowed") for a in self.allowed]
        return ErrorBody(code=self.code, message=self.message, field="state", details=details)


class StaleVersion(Conflict):
    code = "stale_version"


class NotYourComplaint(Forbidden):
    code = "not_your_complaint"


class ApprovalRefused(Forbidden):
    code = "approval_refused"
