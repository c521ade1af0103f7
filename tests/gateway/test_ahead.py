"""The look-ahead of root fields (gateway/ahead.py) on a schema of its own: the nested
loaders are asked and waited for before graphql-core walks the answer, but never at the
cost of a field graphql-core starts itself."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from gateway.ahead import LookAhead
from gateway.types.common import later


@strawberry.type
class Item:
    key: str

    @strawberry.field
    def loaded(self, info: strawberry.Info) -> str:
        value: str = later(info.context["loader"].load(self.key))
        info.context["seen"].append("pending" if isinstance(value, asyncio.Future) else "done")
        return value

    @strawberry.field
    async def started(self, info: strawberry.Info) -> bool:
        info.context["started"].set()
        return True


@strawberry.type
class Query:
    @strawberry.field(extensions=[LookAhead()])
    async def items(self) -> list[Item]:
        return [Item(key="a"), Item(key="b"), Item(key="a")]


schema = strawberry.Schema(query=Query)


def context(wait_for_started: bool) -> dict[str, Any]:
    started = asyncio.Event()
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[str]:
        batches.append(keys)
        if wait_for_started:
            await started.wait()
        return [k.upper() for k in keys]

    return {"loader": DataLoader(load), "started": started, "seen": [], "batches": batches}


async def test_graphql_core_finds_the_nested_loads_done() -> None:
    ctx = context(wait_for_started=False)
    result = await schema.execute("{ items { key loaded } }", context_value=ctx)
    assert result.errors is None
    assert result.data == {
        "items": [
            {"key": "a", "loaded": "A"},
            {"key": "b", "loaded": "B"},
            {"key": "a", "loaded": "A"},
        ]
    }
    assert ctx["batches"] == [["a", "b"]]
    # Asked ahead (pending then), and done by the time graphql-core resolves the fields.
    assert ctx["seen"] == ["pending"] * 3 + ["done"] * 3


async def test_a_field_left_to_graphql_core_starts_with_the_loads() -> None:
    # The load finishes only once `started` ran: a look-ahead that waited for the load
    # before graphql-core could start `started` would never finish.
    ctx = context(wait_for_started=True)
    result = await asyncio.wait_for(
        schema.execute("{ items { loaded started } }", context_value=ctx), timeout=5
    )
    assert result.errors is None and result.data is not None
    assert [i["loaded"] for i in result.data["items"]] == ["A", "B", "A"]
    assert ctx["batches"] == [["a", "b"]]


async def test_nothing_under_a_directive_is_asked_ahead() -> None:
    ctx = context(wait_for_started=False)
    result = await schema.execute(
        "query ($no: Boolean!) { items { key loaded @skip(if: $no) } }",
        variable_values={"no": True},
        context_value=ctx,
    )
    assert result.errors is None
    assert ctx["batches"] == []
