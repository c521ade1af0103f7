"""Domain errors of the profile service."""

from __future__ import annotations

from services.kit.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"

    def __init__(self, msisdn: str) -> None:
        super().__init__(f"找不到号码为 {msisdn} 的客户", field="msisdn")


class CustomerExists(Conflict):
    code = "customer_exists"

    def __init__(self, msisdn: str) -> None:
        super().__init__(f"号码为 {msisdn} 的客户已存在", field="msisdn")


class StaleVersion(Conflict):
    """Someone changed the customer since the caller read it: reload, then retry."""

    code = "stale_version"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"客户档案在版本 {expected} 之后已被修改（当前版本 {current}）；请重新读取后再修改",
            field="version",
        )


class VersionRequired(DomainError):
    status_code = 428
    code = "version_required"

    def __init__(self) -> None:
        super().__init__(
            "请提供读取到的版本：If-Match 请求头或 `version` 字段",
            field="version",
        )


class TeamNotFound(NotFound):
    code = "team_not_found"

    def __init__(self, team_id: str) -> None:
        super().__init__(f"找不到团队 {team_id}", field="team_id")


class ManagerNotFound(NotFound):
    code = "manager_not_found"

    def __init__(self, manager_id: str) -> None:
        super().__init__(f"找不到客户经理 {manager_id}", field="manager_id")


class SnapshotMissing(InvalidInput):
    """A retention report needs snapshots the operator has not taken."""

    code = "snapshot_missing"


class ErasureNotFound(NotFound):
    code = "erasure_not_found"

    def __init__(self, erasure_id: int) -> None:
        super().__init__(f"找不到删除申请 {erasure_id}", field="erasure_id")


class AlreadyErased(Conflict):
    code = "already_erased"

    def __init__(self) -> None:
        super().__init__("该客户的个人信息已删除", field="msisdn")


class ErasureOpen(Conflict):
    code = "erasure_open"

    def __init__(self) -> None:
        super().__init__("该客户已有一份未完成的删除申请", field="msisdn")


class ErasureNotPending(Conflict):
    code = "invalid_transition"

    def __init__(self, status: str) -> None:
        super().__init__(f"该删除申请已是 {status} 状态，不能再批准", field="erasure_id")


__all__ = [
    "AlreadyErased",
    "Conflict",
    "CustomerExists",
    "CustomerNotFound",
    "ErasureNotFound",
    "ErasureNotPending",
    "ErasureOpen",
    "Forbidden",
    "InvalidInput",
    "ManagerNotFound",
    "SnapshotMissing",
    "StaleVersion",
    "TeamNotFound",
    "VersionRequired",
]
