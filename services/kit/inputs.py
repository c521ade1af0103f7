"""Input no route may receive, refused in one place for every route of every service.

The app factory adds :func:`guard_inputs` to every route. After routing and before the
route's own validation it refuses, with 422 naming the field:

- a NUL character or a lone surrogate in any path or query value or in any string (or key)
  of a JSON body: PostgreSQL cannot store either in text, and a surrogate cannot even be
  encoded to UTF-8;
- an integer outside PostgreSQL's ``bigint`` in a path or query parameter declared as an
  integer, or anywhere in a JSON body: no column can hold it;
- a number in a JSON body that is not finite (``NaN``, ``Infinity``, ``1e999``).

and, with 415, a body whose media type the route does not take: a route with a JSON body
model takes ``application/json`` (or ``+json``); a route that reads its body itself lists
its media types in ``openapi_extra["requestBody"]["content"]``. Narrower columns
(``integer``, ``smallint``) are the database's to refuse: :mod:`services.kit.errors` turns
its "out of range" into 422 as well. Bodies over the configured size never reach a route
(413, FastAPI's own ``max_body_size``).
"""

from __future__ import annotations

import email.message
import math
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.errors import ErrorBody, UnsupportedMediaType

INT8_MIN = -(2**63)
INT8_MAX = 2**63 - 1
# Years a date or time may have at the edge: within them every day arithmetic the services
# do (a day before, a year after, a time zone) stays inside Python's and PostgreSQL's range.
MIN_YEAR = 1900
MAX_YEAR = 2999

JSON_TYPES = ("application/json",)
_INTEGER = re.compile(r"[+-]?\d+")  # anything else is the route's validation to refuse


@dataclass(frozen=True)
class RouteInputs:
    """What the guard needs to know of one route, worked out once."""

    integers: frozenset[str]  # path and query parameters (by alias) that hold integers
    dates: frozenset[str]  # those that hold dates or times
    json_body: bool  # the route has a body model, parsed from JSON
    media_types: tuple[str, ...]  # media types of a body the route reads itself


def _leaves(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _leaves(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        for arg in typing.get_args(annotation):
            yield from _leaves(arg)
    else:
        yield annotation


def _holds(annotation: Any, kind: type | tuple[type, ...]) -> bool:
    return any(
        isinstance(leaf, type) and issubclass(leaf, kind) and not issubclass(leaf, bool)
        for leaf in _leaves(annotation)
    )


_CACHE: dict[int, RouteInputs] = {}


def route_inputs(route: APIRoute) -> RouteInputs:
    found = _CACHE.get(id(route))
    if found is not None:
        return found
    params = [*route.dependant.path_params, *route.dependant.query_params]
    for sub in _flatten(route.dependant.dependencies):
        params += [*sub.path_params, *sub.query_params]
    integers = frozenset(p.alias for p in params if _holds(p.field_info.annotation, int))
    dates = frozenset(p.alias for p in params if _holds(p.field_info.annotation, date))
    body = route.body_field
    extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    found = RouteInputs(
        integers=integers,
        dates=dates,
        json_body=body is not None and not isinstance(body.field_info, Form),
        media_types=tuple(extra),
    )
    _CACHE[id(route)] = found
    return found


def _flatten(dependants: list[Any]) -> Iterator[Any]:
    for dependant in dependants:
        yield dependant
        yield from _flatten(dependant.dependencies)


def _problem(kind: str, loc: tuple[str | int, ...], message: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": message, "input": value}


def text_problem(value: str, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    if "\x00" in value:
        return _problem("string_nul", loc, "String should not contain NUL", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _problem("string_unicode", loc, "String should be valid Unicode", value)
    return None


def _int_problem(value: int, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    if INT8_MIN <= value <= INT8_MAX:
        return None
    return _problem("int_out_of_range", loc, "Integer out of range", value)


def json_problems(value: Any, loc: tuple[str | int, ...] = ("body",)) -> Iterator[dict[str, Any]]:
    """Every string, integer and number of a parsed JSON body that no route can take."""
    if isinstance(value, str):
        problem = text_problem(value, loc)
        if problem:
            yield problem
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        problem = _int_problem(value, loc)
        if problem:
            yield problem
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield _problem("float_not_finite", loc, "Number should be finite", str(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            key_problem = text_problem(str(key), loc)
            if key_problem:
                yield key_problem
                continue
            yield from json_problems(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_problems(item, (*loc, index))


def _year_problem(raw: str, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    head = raw.strip()[:5]
    digits = head[:4]
    if not digits.isdigit():
        return None  # not a date at all: the route's own validation names it
    five_digits = len(head) == 5 and head[4].isdigit()
    year = MAX_YEAR + 1 if five_digits else int(digits)
    if MIN_YEAR <= year <= MAX_YEAR:
        return None
    return _problem("date_out_of_range", loc, "Year out of range", raw)


def _param_problems(request: Request, inputs: RouteInputs) -> Iterator[dict[str, Any]]:
    for kind, items in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, raw in items:
            if not isinstance(raw, str):
                continue
            loc = (kind, name)
            problem = text_problem(raw, loc)
            if problem is None and name in inputs.integers and _INTEGER.fullmatch(raw.strip()):
                problem = _int_problem(int(raw.strip()), loc)
            if problem is None and name in inputs.dates:
                problem = _year_problem(raw, loc)
            if problem:
                yield problem


def _media_type(request: Request) -> str | None:
    header = request.headers.get("content-type")
    if header is None:
        return None
    message = email.message.Message()
    message["content-type"] = header
    return message.get_content_type()


def _is_json(media_type: str) -> bool:
    return media_type in JSON_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _refuse_media_type(media_type: str | None, accepted: str) -> None:
    shown = media_type or "（未声明）"
    raise UnsupportedMediaType(f"不支持的请求体类型 {shown}；须为 {accepted}", field="content-type")


async def guard_inputs(request: Request) -> None:
    """Refuse what no route can take (see the module's doc); a dependency of every route."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    inputs = route_inputs(route)
    problems = list(_param_problems(request, inputs))
    if inputs.media_types and await request.body():
        media_type = _media_type(request)
        if media_type not in inputs.media_types:
            _refuse_media_type(media_type, " 或 ".join(inputs.media_types))
    elif inputs.json_body and await request.body():
        media_type = _media_type(request)
        if media_type is None or not _is_json(media_type):
            _refuse_media_type(media_type, "application/json")
        problems += json_problems(await request.json())
    if problems:
        raise RequestValidationError(problems)


class BodyLimit:
    """413 for a body larger than its route takes, before the route reads it.

    The limit is ``max_bytes`` (``KEEPWELL_MAX_BODY_BYTES``) unless the route declares its own
    ``max_body_size`` (profile's customer import). A declared ``Content-Length`` over it is
    answered at once without reading anything; a body sent in chunks is counted as it
    arrives and refused when it passes the limit. FastAPI's own ``max_body_size`` answers
    in plain text; this one answers in the error format of every other refusal.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

        self._declared: list[tuple[re.Pattern[str], frozenset[str], int]] | None = None

    def _limit(self, scope: Scope) -> int:
        if self._declared is None:  # routes are all in place by the first request
            self._declared = [
                (context.path_regex, frozenset(context.methods or ()), declared)
                for context in iter_route_contexts(getattr(scope.get("app"), "routes", []))
                if isinstance(declared := getattr(context, "max_body_size", None), int)
            ]
        for pattern, methods, declared in self._declared:
            if scope["method"] in methods and pattern.match(scope["path"]):
                return declared
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"请求体过大：至多 {limit} 字节")
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    body = ErrorBody(code="payload_too_large", message=f"请求体过大：至多 {limit} 字节")
    return JSONResponse(body.model_dump(), status_code=413, headers={"Connection": "close"})
