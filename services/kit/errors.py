"""One error format for every service: ``{"code", "message", "field", "details"}``.

``message`` is Chinese in every service (for the operators who read it); ``code`` is the
stable English name for programs, and ``field`` names the offending field (``body`` for a
body that is not JSON).

Services raise :class:`DomainError` subclasses; the handlers installed by the app factory
turn them, request validation errors and anything unexpected into that format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kit.outages import Dependency, unavailable

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


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (401, "No valid internal token"),
        (403, "The acting principal may not do this"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (413, "The body is larger than this route takes"),
        (415, "The body's media type is not one this route takes (`field`: content-type)"),
        (422, "Invalid input; `field` names the offending field"),
        (
            503,
            "PostgreSQL or Redis is unreachable for now (`database_unavailable`, "
            "`redis_unavailable`); retry after `Retry-After` seconds",
        ),
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


# Messages are Chinese (the people reading them are Chinese operators); ``code`` stays the
# stable English name programs match on. Pydantic's own types, by the context they carry:
_MESSAGES: dict[str, str] = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "string_type": "须为字符串",
    "string_too_short": "长度至少 {min_length}",
    "string_too_long": "长度至多 {max_length}",
    "string_pattern_mismatch": "格式不符（须匹配 {pattern}）",
    "int_type": "须为整数",
    "int_parsing": "须为整数",
    "int_from_float": "须为整数",
    "float_type": "须为数字",
    "float_parsing": "须为数字",
    "decimal_type": "须为数字",
    "decimal_parsing": "须为数字",
    "decimal_max_digits": "数字至多 {max_digits} 位",
    "decimal_max_places": "小数至多 {decimal_places} 位",
    "bool_type": "须为 true 或 false",
    "bool_parsing": "须为 true 或 false",
    "enum": "取值须为 {expected} 之一",
    "literal_error": "取值须为 {expected} 之一",
    "greater_than": "须大于 {gt}",
    "greater_than_equal": "须不小于 {ge}",
    "less_than": "须小于 {lt}",
    "less_than_equal": "须不大于 {le}",
    "too_short": "至少 {min_length} 项",
    "too_long": "至多 {max_length} 项",
    "list_type": "须为数组",
    "dict_type": "须为对象",
    "model_type": "须为对象",
    "model_attributes_type": "须为对象",
    "date_type": "须为日期（YYYY-MM-DD）",
    "date_parsing": "须为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "须为日期（YYYY-MM-DD）",
    "date_from_datetime_inexact": "须为日期（YYYY-MM-DD），不带时刻",
    "datetime_type": "须为时间（如 2026-12-01T10:00:00+08:00）",
    "datetime_parsing": "须为时间（如 2026-12-01T10:00:00+08:00）",
    "datetime_from_date_parsing": "须为时间（如 2026-12-01T10:00:00+08:00）",
    "uuid_type": "须为 UUID",
    "uuid_parsing": "须为 UUID",
    "none_required": "须为 null",
    # services.kit.inputs and the database's own refusals (handled below):
    "string_nul": "不能含 NUL 字符（\\u0000）",
    "string_unicode": "须为合法的 Unicode 文本（不能含单独的代理码点）",
    "int_out_of_range": "整数超出范围（-9223372036854775808 至 9223372036854775807）",
    "float_not_finite": "须为有限的数字",
    "date_out_of_range": "年份须在 1900 至 2999 之间",
}


def chinese_message(err: Mapping[str, Any]) -> str:
    """A pydantic error as a Chinese message; our own validators already raise Chinese
    text (shown without pydantic's "Value error, " prefix)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "json_invalid":
        loc = tuple(err.get("loc", ()))
        at = (
            f"第 {int(loc[-1]) + 1} 个字符处出错"
            if loc and isinstance(loc[-1], int)
            else "无法解析"
        )
        reason = f"（{ctx['error']}）" if ctx.get("error") else ""
        return f"请求体不是合法的 JSON：{at}{reason}"
    template = _MESSAGES.get(kind)
    if template is None:
        return str(err.get("msg", "无效"))
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return template.split("{")[0].rstrip("（ ") or str(err.get("msg", "无效"))


def _detail_of(err: Mapping[str, Any]) -> ErrorDetail:
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        # FastAPI puts the character offset where a field belongs: the field is the body.
        field: str | None = "body"
    else:
        field = _field_of(loc)
    return ErrorDetail(
        field=field, message=chinese_message(err), code=str(err.get("type", "invalid"))
    )


def _json(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _json(exc.status_code, exc.body(), headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [_detail_of(err) for err in exc.errors()]
    first = details[0] if details else ErrorDetail(field=None, message="无效", code="invalid")
    named = first.field and first.code != "json_invalid"  # that message names the body
    message = f"{first.field}：{first.message}" if named else first.message
    body = ErrorBody(code="invalid", message=message, field=first.field, details=details)
    return _json(422, body)


_HTTP_CODES = {
    404: ("not_found", "找不到该地址"),
    405: ("method_not_allowed", "该地址不支持此请求方法"),
    413: ("payload_too_large", "请求体过大"),
}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return _json(exc.status_code, ErrorBody(code=code, message=message), exc.headers)


# The database's own refusal of a value (SQLSTATE class 22, "data exception": a number out
# of a column's range, a string too long, a character it cannot store), and Python's when
# a value is past what it can compute with (a date beyond year 9999): the caller's input,
# not our fault. The edge (services.kit.inputs) refuses most of it first and names the
# field; this is the net for the rest (an ``integer`` column given a ``bigint``).
_OUT_OF_RANGE = re.compile(r"query argument \$\d+: (.+?) \(value out of")


def _caused_by_input(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OverflowError | UnicodeEncodeError):
            return current
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def _field_holding(request: Request, value: str) -> str | None:
    for name, raw in [*request.path_params.items(), *request.query_params.multi_items()]:
        if str(raw).strip() == value:
            return str(name)
    return None


UNAVAILABLE_RETRY_AFTER_SECONDS = 5
_UNAVAILABLE: dict[Dependency, tuple[str, str]] = {
    "database": ("database_unavailable", "数据库暂时不可用，请稍后重试"),
    "redis": ("redis_unavailable", "任务队列（Redis）暂时不可用，请稍后重试"),
}


def _unavailable(request: Request, dependency: Dependency, exc: Exception) -> JSONResponse:
    # Not a bug of ours and not the caller's: the pool reconnects by itself once the
    # server is back (pool_pre_ping), so a retry a few seconds later succeeds.
    logger.warning("%s unreachable on %s %s: %s", dependency, request.method, request.url.path, exc)
    code, message = _UNAVAILABLE[dependency]
    return _json(
        503,
        ErrorBody(code=code, message=message),
        {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


async def _dependency_error(request: Request, exc: Exception) -> JSONResponse:
    """A connection error: 503 when it is PostgreSQL's or Redis's, else a 500."""
    dependency = unavailable(exc)
    if dependency is None:
        return await _unexpected_error(request, exc)
    return _unavailable(request, dependency, exc)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    dependency = unavailable(exc)
    if dependency is not None:
        return _unavailable(request, dependency, exc)
    cause = _caused_by_input(exc)
    if cause is None:
        return await _unexpected_error(request, exc)
    logger.warning(
        "input refused by the database on %s %s: %s", request.method, request.url.path, cause
    )
    found = _OUT_OF_RANGE.search(str(cause))
    field = _field_holding(request, found.group(1)) if found else None
    if found or isinstance(cause, OverflowError) or "range" in str(cause):
        message, code = "数值或日期超出可接受的范围", "out_of_range"
    else:
        message, code = "含有无法保存的值", "invalid_value"
    shown = f"{field}：{message}" if field else message
    detail = ErrorDetail(field=field, message=message, code=code)
    return _json(422, ErrorBody(code="invalid", message=shown, field=field, details=[detail]))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, ErrorBody(code="internal_error", message="内部错误，请稍后重试"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OverflowError, _database_error)
    # What a driver raises when its server is gone: a refused or vanished socket comes
    # unwrapped from asyncpg's connect, a closed connection as asyncpg's own error.
    for error in (OSError, asyncpg.PostgresError, RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(error, _dependency_error)
    app.add_exception_handler(Exception, _unexpected_error)
