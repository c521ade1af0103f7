"""What every type module shares: building a type from a service's JSON, Relay paging."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from pydantic import TypeAdapter

from gateway.context import Context

T = TypeVar("T")

Info = strawberry.Info[Context, None]
"""What every resolver is given: the request's context (caller, clients, loaders)."""


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """An object of the strawberry type ``cls`` from a service's JSON: the fields it
    declares, parsed (dates, enums) by pydantic; other keys are left behind."""
    result: T = _adapter(cls).validate_python(data)
    return result


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
    raise ValueError("after: not a cursor this API returned")
