"""What every type module shares: building a type from a service's JSON, Relay paging."""

from __future__ import annotations

import base64
import dataclasses
import functools
import operator
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from pydantic import BaseModel, ConfigDict, create_model

from gateway.context import Context

T = TypeVar("T")

Info = strawberry.Info[Context, None]
"""What every resolver is given: the request's context (caller, clients, loaders)."""


_MODELS: dict[type[Any], type[BaseModel]] = {}
_COERCE = ConfigDict(coerce_numbers_to_str=True)  # ids are numbers in JSON, ID in GraphQL


def _model(cls: type[Any]) -> type[BaseModel]:
    """A pydantic model with the data fields of the strawberry type ``cls``, made from its
    annotations (strawberry rewrites the dataclass fields' types when the schema is built,
    the annotations stay as written). Nested strawberry types get models of their own."""
    model = _MODELS.get(cls)
    if model is None:
        hints = typing.get_type_hints(cls)
        fields: dict[str, Any] = {}
        for f in _data_fields(cls):
            hint = _swap(hints[f.name])
            fields[f.name] = (hint, None) if _optional(hint) else (hint, ...)
        model = _MODELS[cls] = create_model(f"{cls.__name__}Data", __config__=_COERCE, **fields)
    return model


def _data_fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The fields that hold data (not resolvers)."""
    return [f for f in dataclasses.fields(cls) if f.init and f.name in cls.__annotations__]


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _swap(hint: Any) -> Any:
    """``hint`` with every strawberry type in it replaced by its model."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _model(hint)
    args = typing.get_args(hint)
    if not args:
        return hint
    swapped = tuple(_swap(a) for a in args)
    if swapped == args:
        return hint
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        return functools.reduce(operator.or_, swapped)
    return origin[swapped]


def _to(cls: type[Any], data: BaseModel) -> Any:
    values = {}
    for f in _data_fields(cls):
        values[f.name] = _value(getattr(data, f.name))
    return cls(**values)


def _value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        target = next(k for k, m in _MODELS.items() if m is type(value))
        return _to(target, value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """An object of the strawberry type ``cls`` from a service's JSON: the fields it
    declares, parsed (dates, enums, nested types) by pydantic; other keys are left behind."""
    result: T = _to(cls, _model(cls).model_validate(data))
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
    raise GraphQLError(
        "after：不是本接口给出的游标", extensions={"code": "BAD_USER_INPUT", "field": "after"}
    )
