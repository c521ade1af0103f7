"""Domain errors of the profile service."""

from __future__ import annotations

from services.kit.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"

    def __init__(self, msisdn: str) -> None:
        super().__init__(f"no customer with number {msisdn}", field="msisdn")


class CustomerExists(Conflict):
    code = "customer_exists"

    def __init__(self, msisdn: str) -> None:
        super().__init__(f"a customer with number {msisdn} exists already", field="msisdn")


class StaleVersion(Conflict):
    """Someone changed the customer since the caller read it: reload, then retry."""

    code = "stale_version"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"customer changed since version {expected} (now version {current}); "
            "reload it and apply your change again",
            field="version",
        )


class VersionRequired(DomainError):
    status_code = 428
    code = "version_required"

    def __init__(self) -> None:
        super().__init__(
            "send the version you read, as an If-Match header or a `version` field",
            field="version",
        )


class TeamNotFound(NotFound):
    code = "team_not_found"

    def __init__(self, team_id: str) -> None:
        super().__init__(f"no team {team_id}", field="team_id")


class ManagerNotFound(NotFound):
    code = "manager_not_found"

    def __init__(self, manager_id: str) -> None:
        super().__init__(f"no manager {manager_id}", field="manager_id")


__all__ = [
    "Conflict",
    "CustomerExists",
    "CustomerNotFound",
    "Forbidden",
    "InvalidInput",
    "ManagerNotFound",
    "StaleVersion",
    "TeamNotFound",
    "VersionRequired",
]
