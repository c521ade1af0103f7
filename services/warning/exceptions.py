"""Domain errors of the warning service."""

from __future__ import annotations

from services.kit.errors import Conflict, Forbidden, InvalidInput, NotFound


class WarningNotFound(NotFound):
    code = "warning_not_found"


class RuleSetNotFound(NotFound):
    code = "rule_set_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidRule(InvalidInput):
    code = "invalid_rule"


class InvalidOutcome(InvalidInput):
    code = "invalid_outcome"


class NotYourWarning(Forbidden):
    code = "not_your_warning"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
