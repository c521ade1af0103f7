"""Look-ahead: a root field asks its nested loaders before graphql-core walks the answer.

Left to graphql-core, every nested field of a page (a customer's manager, their warnings)
returns a loader's pending future: graphql-core then completes each of them in a coroutine
of its own and gathers each object's fields in tasks, about 200 awaitables for a page of 50
customers, a fifth of the gateway's CPU for that page. Asked ahead, the loaders batch the
same keys into the same calls; by the time graphql-core reaches those fields their futures
are done, ``later()`` hands back the value itself, and the page completes synchronously.

What is asked ahead is what graphql-core would ask anyway: the fields selected (fragments
expanded; nothing under a directive, which may skip it), resolved by the nested fields' own
resolvers, and only resolvers that take nothing but ``info`` and are not coroutines (they
only ask a loader, see ``gateway/types/``). A resolver that refuses (a partner's scope) or
fails is left for graphql-core to run again, with the same error; a load that fails leaves
its future failed in the loader, so each field it feeds carries the error as before. A
future's subtree is looked at as soon as that future is done, as graphql-core would.

The walk waits only while that delays nothing: once it reaches a selected field it leaves
to graphql-core (a coroutine resolver such as a customer 360's contact log, or one with
arguments), it stops waiting, so that field starts with the loads, not after them; the
loads it asked stay in flight and graphql-core finds them in the loaders.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
    get_named_type,
    is_abstract_type,
)
from strawberry.extensions import FieldExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF

Resolver = Callable[[Any, Any], Any]
_RESOLVERS: dict[int, Resolver | None] = {}


def _plain_resolver(field: StrawberryField) -> Resolver | None:
    """The resolver of ``field`` if it may be run ahead: plain (not a coroutine), ``self``
    and ``info`` only, no field extension around it."""
    key = id(field)
    if key not in _RESOLVERS:
        resolver = field.base_resolver
        found: Resolver | None = None
        if resolver is not None and not field.is_async and not field.extensions:
            func = resolver.wrapped_func
            if callable(func) and list(inspect.signature(func).parameters) == ["self", "info"]:
                found = func
        _RESOLVERS[key] = found
    return _RESOLVERS[key]


def _left(value: Any, info: Any) -> None:
    """Stands for a resolver left to graphql-core (a coroutine, or one with arguments)."""


Step = tuple[str, Resolver | None, GraphQLOutputType, Sequence[SelectionNode] | None]
"""One selected field worth a look: the attribute, the resolver to run ahead (``None``: a
plain attribute with something worth a look below it; ``_left``: a resolver graphql-core
starts itself), its type, and its selections if something below is worth a look."""


class _Walk:
    def __init__(self, info: Any, raw: GraphQLResolveInfo[Any]) -> None:
        self.info = info
        self.raw = raw
        self.plans: dict[tuple[str, int], list[Step]] = {}
        self.pending: list[tuple[asyncio.Future[Any], GraphQLOutputType, Sequence[Any] | None]] = []
        self.left = False
        """Whether a field left to graphql-core was reached: then waiting would delay it."""

    def visit(self, type_: GraphQLOutputType, value: Any, selections: Sequence[Any]) -> None:
        """Run what may run ahead under ``value`` (an object, a list of them, or ``None``)
        now; keep the futures still pending."""
        if value is None:
            return
        named = get_named_type(type_)
        steps: list[Step] | None = None
        if isinstance(named, GraphQLObjectType):
            steps = self.plan(named, selections)
            if not steps:
                return
        elif not is_abstract_type(named):
            return
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, list | tuple):
                self.visit(type_, item, selections)
            elif item is not None:
                self.run(steps if steps is not None else self.concrete(item, selections), item)

    def concrete(self, value: Any, selections: Sequence[Any]) -> list[Step]:
        """The plan for ``value`` under a union or interface: its own type's."""
        definition = getattr(value, "__strawberry_definition__", None)
        found = self.raw.schema.get_type(definition.name) if definition else None
        return self.plan(found, selections) if isinstance(found, GraphQLObjectType) else []

    def run(self, steps: list[Step], value: Any) -> None:
        for attribute, resolver, child_type, below in steps:
            if resolver is _left:
                self.left = True
                continue
            if resolver is None:
                if below is not None:
                    self.visit(child_type, getattr(value, attribute, None), below)
                continue
            try:
                child = resolver(value, self.info)
            except Exception:  # graphql-core runs it again and reports the error
                continue
            if isinstance(child, asyncio.Future):
                if not child.done():
                    self.pending.append((child, child_type, below))
            elif inspect.isawaitable(child):
                if inspect.iscoroutine(child):
                    child.close()  # not a loader's future: graphql-core will run it
            elif below is not None:
                self.visit(child_type, child, below)

    def plan(self, type_: GraphQLObjectType, selections: Sequence[Any]) -> list[Step]:
        """The fields of ``selections`` on ``type_`` that run ahead or lead to some."""
        key = (type_.name, id(selections))
        steps = self.plans.get(key)
        if steps is None:
            steps = self.plans[key] = []
            for node in self.fields(type_, selections):
                graphql_field = type_.fields.get(node.name.value)
                field = graphql_field.extensions.get(BACKREF) if graphql_field else None
                if graphql_field is None or not isinstance(field, StrawberryField):
                    continue
                below = node.selection_set.selections if node.selection_set else None
                child = get_named_type(graphql_field.type)
                if below and isinstance(child, GraphQLObjectType) and not self.plan(child, below):
                    below = None
                if field.base_resolver is None:
                    if below:
                        steps.append((field.python_name, None, graphql_field.type, below))
                else:
                    resolver = _plain_resolver(field) or _left
                    below = below if resolver is not _left else None
                    steps.append((field.python_name, resolver, graphql_field.type, below or None))
        return steps

    def fields(self, type_: GraphQLObjectType, selections: Sequence[Any]) -> list[FieldNode]:
        """The field nodes that apply to ``type_``, fragments expanded; none under a
        directive (``@skip``, ``@include``: graphql-core decides those)."""
        found: list[FieldNode] = []
        for node in selections:
            if node.directives:
                continue
            if isinstance(node, FieldNode):
                found.append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else None
                if self.applies(condition, type_):
                    found += self.fields(type_, node.selection_set.selections)
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.raw.fragments.get(node.name.value)
                if fragment is not None and self.applies(fragment.type_condition.name.value, type_):
                    found += self.fields(type_, fragment.selection_set.selections)
        return found

    def applies(self, condition: str | None, type_: GraphQLObjectType) -> bool:
        if condition is None or condition == type_.name:
            return True
        abstract = self.raw.schema.get_type(condition)
        return is_abstract_type(abstract) and self.raw.schema.is_sub_type(abstract, type_)

    async def settle(self) -> None:
        """Wait for the pending futures, each subtree as soon as its future is done, until
        a field left to graphql-core is reached."""
        while self.pending and not self.left:
            waiting = {id(future): future for future, _, _ in self.pending}
            await asyncio.wait(waiting.values(), return_when=asyncio.FIRST_COMPLETED)
            now, self.pending = self.pending, []
            for future, type_, below in now:
                if not future.done():
                    self.pending.append((future, type_, below))
                elif below is not None and not future.cancelled() and future.exception() is None:
                    self.visit(type_, future.result(), below)


async def look_ahead(info: Any, value: Any) -> None:
    """Ask, ahead, every loader the selection under ``info``'s field will ask of ``value``
    (the field's answer), and wait for them."""
    raw: GraphQLResolveInfo[Any] = info._raw_info  # strawberry's Info keeps graphql-core's
    walk = _Walk(info, raw)
    for field_node in raw.field_nodes:
        if field_node.selection_set is not None:
            walk.visit(raw.return_type, value, field_node.selection_set.selections)
    await walk.settle()


class LookAhead(FieldExtension):
    """On a root field: its answer's nested loaders are asked before it is returned."""

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        value = await next_(source, info, **kwargs)
        await look_ahead(info, value)
        return value
