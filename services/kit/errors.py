"""One error format for every service: ``{"code", "message", "field", "details"}``.

Services raise :class:`DomainError` subclasses; the handlers installed by the app factory
turn them, request validation errors and anything unexpected into that format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("keepwell.errors")


class ErrorDetail(BaseModel):
    field: str | None
    message: str
    code: str


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] = []


class DomainError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> ErrorBody:
        return ErrorBody(code=self.code, message=self.message, field=self.field)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (401, "No valid internal token"),
        (403, "The acting principal may not do this"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (422, "Invalid input; `field` names the offending field"),
    ]
}


def _field_of(loc: tuple[int | str, ...]) -> str | None:
    # Drop the "body"/"query"/"path" prefix: callers think in field names.
    parts = (
        [str(p) for p in loc[1:]]
        if loc and loc[0] in ("body", "query", "path", "header")
        else [str(p) for p in loc]
    )
    return ".".join(parts) or None


def _json(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _json(exc.status_code, exc.body(), headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        ErrorDetail(
            field=_field_of(tuple(err.get("loc", ()))),
            message=str(err.get("msg", "invalid")),
            code=str(err.get("type", "invalid")),
        )
        for err in exc.errors()
    ]
    first = details[0] if details else ErrorDetail(field=None, message="invalid", code="invalid")
    message = f"{first.field}: {first.message}" if first.field else first.message
    body = ErrorBody(code="invalid", message=message, field=first.field, details=details)
    return _json(422, body)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json(exc.status_code, ErrorBody(code=code, message=str(exc.detail)), exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, ErrorBody(code="internal_error", message="internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
