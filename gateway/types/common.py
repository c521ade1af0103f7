"""What every type module shares: building a type from a service's JSON, Relay paging."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError

from gateway.context import Context

T = TypeVar("T")

Info = strawberry.Info[Context, None]
"""What every resolver is given: the request's context (caller, clients, loaders)."""


Convert = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class _Builder:
    """How the JSON of one strawberry type becomes its fields: the names taken as they
    are (required ones, then those that may be absent), then the ones converted."""

    required: tuple[str, ...]
    absent_ok: tuple[str, ...]
    converted: tuple[tuple[str, Convert, bool], ...]


_BUILDERS: dict[type[Any], _Builder] = {}


def _builder(cls: type[Any]) -> _Builder:
    """Per data field of the strawberry type ``cls``: its name, how a JSON value becomes
    the field's Python value, and whether it may be absent. Made once per type from the
    annotations (strawberry rewrites the dataclass fields' types when the schema is built;
    the annotations stay as written). Plain functions, not a validating model: the
    services have validated what they answer, and a page of 50 customers is built on every
    request."""
    found = _BUILDERS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        fields = [
            (f.name, _converter(hints[f.name]), _optional(hints[f.name]))
            for f in dataclasses.fields(cls)
            if f.init and f.name in cls.__annotations__
        ]
        found = _BUILDERS[cls] = _Builder(
            required=tuple(n for n, c, optional in fields if c is _same and not optional),
            absent_ok=tuple(n for n, c, optional in fields if c is _same and optional),
            converted=tuple(f for f in fields if f[1] is not _same),
        )
    return found


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _converter(hint: Any) -> Convert:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = args  # only `X | None` unions carry data here; build() passes None on
        return _converter(inner)
    if origin is list:
        item = _converter(args[0])
        if item is _same:
            return _same
        return lambda v: [item(i) for i in v]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        nested: type[Any] = hint
        return lambda v: build(nested, v)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint is datetime:
        return datetime.fromisoformat
    if hint is date:
        return date.fromisoformat
    if hint in (Decimal, uuid.UUID):
        return lambda v: hint(str(v))
    if hint is strawberry.ID:
        return str
    return _same


def _same(value: Any) -> Any:
    return value


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """An object of the strawberry type ``cls`` from a service's JSON: the fields it
    declares (dates, decimals, enums and nested types made from their JSON); other keys
    are left behind."""
    builder = _builder(cls)
    values = {name: data[name] for name in builder.required}
    for name in builder.absent_ok:
        values[name] = data.get(name)
    for name, convert, optional in builder.converted:
        value = data.get(name) if optional else data[name]
        values[name] = None if value is None else convert(value)
    return cls(**values)


def later(awaitable: Awaitable[T]) -> T:
    """What ``awaitable`` (a loader's future) will be, handed back by a plain resolver:
    graphql-core awaits it. A nested field that only asks a loader then costs no coroutine
    of its own, and a page of 50 customers has hundreds of such fields. A future that is
    done already (the root field asked ahead, ``gateway/ahead.py``) gives its value, or
    raises its error, at once: graphql-core then completes the field without awaiting."""
    if isinstance(awaitable, asyncio.Future) and awaitable.done():
        return typing.cast(T, awaitable.result())
    return typing.cast(T, awaitable)


def build_all(cls: type[T], rows: Sequence[Mapping[str, Any]]) -> list[T]:
    return [build(cls, r) for r in rows]


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow `endCursor`.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type(description="A page of items: `nodes`, and where the next page starts.")
class Connection(Generic[T]):
    nodes: list[T]
    page_info: PageInfo


def connection(nodes: list[T], next_cursor: str | None) -> Connection[T]:
    return Connection(
        nodes=nodes,
        page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
    )


def offset_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def offset_of(cursor: str | None) -> int:
    """The offset an offset-paged service takes, from a cursor this gateway gave."""
    if cursor is None:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "o" and int(value) >= 0:
            return int(value)
    except ValueError:
        pass
    raise GraphQLError(
        "after：不是本接口给出的游标", extensions={"code": "BAD_USER_INPUT", "field": "after"}
    )
