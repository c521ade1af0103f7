"""Expected failures of a mutation, as typed results with a stable ``code``.

Every mutation answers ``<Success> | ValidationFailed | NotFound | InvalidTransition |
StaleVersion | Forbidden | Conflict``; the service's error body decides which one, so an
app switches on ``__typename`` (or ``code``) instead of parsing messages.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from gateway.errors import ServiceError

T = TypeVar("T")


@strawberry.interface(description="Why a mutation did not happen. Nothing was changed.")
class Problem:
    code: str = strawberry.field(description="Stable, for programs: e.g. `stale_version`.")
    message: str = strawberry.field(description="For people (中文).")


@strawberry.type(description="The input breaks a rule; `field` names the offending field.")
class ValidationFailed(Problem):
    field: str | None


@strawberry.type(description="The record does not exist, or is not yours to see.")
class NotFound(Problem):
    pass


@strawberry.type(description="The step does not apply in the record's current state.")
class InvalidTransition(Problem):
    allowed: list[str] = strawberry.field(description="The steps that would apply now.")


@strawberry.type(description="Someone changed the record since you read it: read it again.")
class StaleVersion(Problem):
    pass


@strawberry.type(description="Your role may not do this.")
class Forbidden(Problem):
    pass


@strawberry.type(description="It clashes with the record's state or with another record.")
class Conflict(Problem):
    pass


ProblemType = ValidationFailed | NotFound | InvalidTransition | StaleVersion | Forbidden | Conflict
"""What every mutation may answer instead of its success: ``Annotated[Success |
ProblemType, strawberry.union("SuccessResult")]``."""


def problem_of(exc: ServiceError) -> ProblemType:
    code, message = exc.code, exc.message
    if exc.status in (400, 422):
        return ValidationFailed(code=code, message=message, field=exc.field)
    if exc.status == 404:
        return NotFound(code=code, message=message)
    if exc.status in (401, 403):
        return Forbidden(code=code, message=message)
    if code == "invalid_transition":
        allowed = [str(d.get("message")) for d in exc.details if d.get("code") == "allowed"]
        return InvalidTransition(code=code, message=message, allowed=allowed)
    if code in ("stale_version", "version_required") or exc.status == 412:
        return StaleVersion(code=code, message=message)
    return Conflict(code=code, message=message)


async def attempt(
    call: Awaitable[Any], success: Callable[[Any], T | Awaitable[T]]
) -> T | ProblemType:
    """``success`` of what the call answered (it may read the record again), or the typed
    problem the service named. A service that does not answer is not a problem of the
    input: that stays an error."""
    try:
        value = success(await call)
        if inspect.isawaitable(value):
            return await value
        return value
    except ServiceError as exc:
        return problem_of(exc)
