"""What one GraphQL operation may ask of the gateway, checked before it runs.

One walk over the parsed document measures, per operation and over the fully expanded
selection (every fragment spread counts as many times as it is spread), its depth, its
aliases, its directives, its root fields and its cost; each fragment is measured once
(memoised), so nested spreads cannot make the walk itself expensive, and a fragment that
spreads itself (directly or not) is refused instead of followed. The walk runs before
graphql-core's validation, so a document over the limits is refused without the (costlier)
standard rules ever seeing it. Query length and tokens are checked before parsing.

Cost: every field costs 1, and a list of objects multiplies the cost of what is selected
inside it by its size: the ``first`` argument of the field (or of the field right above
it, as in ``customers(first: 50) { nodes { ... } }`` and ``myWorkQueue(first: 20)``), the
argument's default when it is not given, else the size declared in :data:`LIST_SIZES`,
else ``default_list_size``. Introspection (``__schema``, ``__type``) adds neither depth
nor cost (graphql-core's ``MaxIntrospectionDepthRule`` bounds it, and production refuses it);
its aliases and directives still count.

Every refusal is a GraphQL error with a stable ``extensions.code`` and the figures.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    TokenKind,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.language import Lexer
from strawberry.extensions import SchemaExtension

from gateway.config import GatewaySettings, get_gateway_settings

LIST_SIZES: dict[str, int] = {
    # Lists whose length the domain bounds, well under the default for unbounded ones.
    "Query.health": 4,  # one per service
    "ServiceHealth.checks": 2,  # database, redis
    "Customer.warnings": 9,  # open warnings: at most one per signal (9 signals)
    "RiskScore.components": 9,  # one per open warning
    "Complaint.steps": 12,  # the 4-step flow, waits and reopenings
    "Sla.metrics": 5,  # first response .. resolution
    "ComplaintGroupReport.metrics": 5,
    "Customer.importantDates": 10,
    "Customer.complaints": 10,  # a customer's complaints, newest first
    "Customer.managerHistory": 10,
    "CareHistory.tasks": 5,  # open call and visit tasks
    "CareHistory.messages": 20,
}
"""Expected size of a list field (``Type.field``) that has no ``first`` argument; a test
checks that each names a list of objects in the schema."""

_SATURATE = 10**12
"""Figures stop growing here: a document of nested spreads cannot make huge integers."""


@dataclass
class Measure:
    """What a selection (or a whole operation) asks for."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0
    root_fields: int = 0
    circular: set[str] = field(default_factory=set)

    def add(self, other: Measure) -> None:
        self.depth = max(self.depth, other.depth)
        self.aliases = min(self.aliases + other.aliases, _SATURATE)
        self.directives = min(self.directives + other.directives, _SATURATE)
        self.cost = min(self.cost + other.cost, _SATURATE)
        self.root_fields = min(self.root_fields + other.root_fields, _SATURATE)
        self.circular |= other.circular


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any],
        default_list_size: int,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.default_list_size = default_list_size
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[tuple[str, int | None, bool, bool], Measure] = {}
        self.expanding: set[str] = set()
        self.variable_defaults: dict[str, Any] = {}

    def operation(self, op: OperationDefinitionNode) -> Measure:
        self.variable_defaults = {
            v.variable.name.value: v.default_value.value
            for v in op.variable_definitions or ()
            if isinstance(v.default_value, IntValueNode)
        }
        self.memo.clear()  # a fragment's cost may depend on this operation's variables
        root = self.schema.get_root_type(op.operation)
        measure = self.selections(op.selection_set, root, None, False, root=True)
        measure.directives += len(op.directives or ())
        return measure

    def selections(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        size: int | None,
        introspection: bool,
        *,
        root: bool = False,
    ) -> Measure:
        total = Measure()
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                one = self.field(node, parent, size, introspection)
                one.root_fields = 1 if root else 0
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                typ = self.schema.get_type(condition.name.value) if condition else parent
                one = self.selections(node.selection_set, typ, size, introspection, root=root)
                one.directives += len(node.directives or ())
            elif isinstance(node, FragmentSpreadNode):
                one = self.spread(node.name.value, size, introspection, root=root)
                one.directives += len(node.directives or ())
            total.add(one)
        return total

    def spread(self, name: str, size: int | None, introspection: bool, *, root: bool) -> Measure:
        fragment = self.fragments.get(name)
        if fragment is None:
            return Measure()  # unknown: validation says so
        if name in self.expanding:
            return Measure(circular={name})
        key = (name, size, introspection, root)
        if key not in self.memo:
            self.expanding.add(name)
            try:
                typ = self.schema.get_type(fragment.type_condition.name.value)
                measure = self.selections(
                    fragment.selection_set, typ, size, introspection, root=root
                )
                measure.directives += len(fragment.directives or ())
            finally:
                self.expanding.discard(name)
            self.memo[key] = measure
        memo = self.memo[key]
        return Measure(
            memo.depth, memo.aliases, memo.directives, memo.cost, memo.root_fields, memo.circular
        )

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        size: int | None,
        introspection: bool,
    ) -> Measure:
        name = node.name.value
        introspection = introspection or name in ("__schema", "__type")
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        child_type: GraphQLNamedType | None = None
        multiplier: int = 1
        child_size: int | None = None
        if definition is not None:
            child_type = get_named_type(definition.type)
            first = self.first(node, definition.args.get("first"))
            gql_type = definition.type
            if isinstance(gql_type, GraphQLNonNull):
                gql_type = gql_type.of_type
            if isinstance(gql_type, GraphQLList):
                if is_composite_type(child_type):
                    key = f"{parent.name}.{name}" if parent else name
                    declared = LIST_SIZES.get(key, self.default_list_size)
                    multiplier = next(s for s in (first, size, declared) if s is not None)
            else:
                child_size = first
        inner = self.selections(node.selection_set, child_type, child_size, introspection)
        counted = not introspection
        return Measure(
            depth=(1 + inner.depth) if counted else 0,
            aliases=inner.aliases + (1 if node.alias else 0),
            directives=inner.directives + len(node.directives or ()),
            cost=min(1 + multiplier * inner.cost, _SATURATE) if counted else 0,
            circular=inner.circular,
        )

    def first(self, node: FieldNode, argument: Any) -> int | None:
        """The ``first`` of a field: given, from a variable, or the argument's default."""
        if argument is None:
            return None
        for arg in node.arguments or ():
            if arg.name.value != "first":
                continue
            value = arg.value
            if isinstance(value, IntValueNode):
                return max(0, int(value.value))
            if isinstance(value, VariableNode):
                name = value.name.value
                given = self.variables.get(name, self.variable_defaults.get(name))
                if isinstance(given, int | str) and not isinstance(given, bool):
                    try:
                        return max(0, int(given))
                    except ValueError:
                        return None
            return None
        default = argument.default_value
        return default if isinstance(default, int) and not isinstance(default, bool) else None


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    default_list_size: int = 50,
) -> dict[str, Measure]:
    """Each operation of the document (``""`` for an anonymous one) and what it asks for."""
    walk = _Walk(schema, document, variables or {}, default_list_size)
    return {
        (op.name.value if op.name else ""): walk.operation(op)
        for op in document.definitions
        if isinstance(op, OperationDefinitionNode)
        and schema.get_root_type(op.operation or OperationType.QUERY) is not None
    }


def refusals(measures: Mapping[str, Measure], limits: GatewaySettings) -> list[GraphQLError]:
    """The GraphQL errors for every limit an operation goes over (none: it may run)."""
    errors: list[GraphQLError] = []

    def refuse(message: str, code: str, **figures: Any) -> None:
        errors.append(GraphQLError(message, extensions={"code": code, **figures}))

    for name, m in measures.items():
        where = f"操作 {name}：" if name else ""
        if m.circular:
            cycle = sorted(m.circular)
            refuse(f"{where}片段循环引用：{', '.join(cycle)}", "CIRCULAR_FRAGMENT", fragments=cycle)
            continue  # its other figures are not meaningful
        if m.depth > limits.max_depth:
            refuse(
                f"{where}查询嵌套过深：{m.depth} 层，上限 {limits.max_depth}",
                "QUERY_TOO_DEEP",
                depth=m.depth,
                maxDepth=limits.max_depth,
            )
        if m.aliases > limits.max_aliases:
            refuse(
                f"{where}别名过多：{m.aliases} 个，上限 {limits.max_aliases}",
                "TOO_MANY_ALIASES",
                aliases=m.aliases,
                maxAliases=limits.max_aliases,
            )
        if m.directives > limits.max_directives:
            refuse(
                f"{where}指令过多：{m.directives} 个，上限 {limits.max_directives}",
                "TOO_MANY_DIRECTIVES",
                directives=m.directives,
                maxDirectives=limits.max_directives,
            )
        if m.root_fields > limits.max_root_fields:
            refuse(
                f"{where}顶层字段过多：{m.root_fields} 个，上限 {limits.max_root_fields}",
                "TOO_MANY_ROOT_FIELDS",
                rootFields=m.root_fields,
                maxRootFields=limits.max_root_fields,
            )
        if m.cost > limits.max_cost:
            refuse(
                f"{where}查询代价过高：{m.cost}，上限 {limits.max_cost}",
                "QUERY_TOO_COSTLY",
                cost=m.cost,
                maxCost=limits.max_cost,
            )
    return errors


def count_tokens(query: str, up_to: int) -> int:
    """Tokens of a document as the parser sees them, counting stops past ``up_to``; a
    lexical error stops counting too (the parser then reports it)."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while lexer.advance().kind != TokenKind.EOF:
            count += 1
            if count > up_to:
                break
    except GraphQLError:
        pass
    return count


class QueryLimits(SchemaExtension):
    """Refuses an operation over the limits in the request's gateway settings (the context's
    ``gateway``) before it is validated or run; the figures of an accepted one are
    not reported (``serviceCalls`` says what it cost)."""

    def _limits(self) -> GatewaySettings:
        gateway = getattr(self.execution_context.context, "gateway", None)
        return gateway if isinstance(gateway, GatewaySettings) else get_gateway_settings()

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        if query is not None:
            limits = self._limits()
            if len(query) > limits.max_query_length:
                raise GraphQLError(
                    f"查询过长：{len(query)} 个字符，上限 {limits.max_query_length}",
                    extensions={
                        "code": "QUERY_TOO_LONG",
                        "length": len(query),
                        "maxLength": limits.max_query_length,
                    },
                )
            tokens = count_tokens(query, limits.max_tokens)
            if tokens > limits.max_tokens:
                raise GraphQLError(
                    f"查询的词法单元过多：超过 {limits.max_tokens} 个",
                    extensions={"code": "TOO_MANY_TOKENS", "maxTokens": limits.max_tokens},
                )
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            limits = self._limits()
            measures = measure(
                context.schema._schema,
                context.graphql_document,
                context.variables,
                limits.default_list_size,
            )
            errors = refusals(measures, limits)
            if errors:
                # Set before validation runs: strawberry then skips it and answers these.
                context.pre_execution_errors = errors
            elif hasattr(context.context, "cost"):
                # What the rate limit charges (gateway/ratelimit.py): the operation that runs.
                chosen = measures.get(context.operation_name or "")
                costs = [chosen] if chosen else measures.values()
                context.context.cost = max((m.cost for m in costs), default=0)
        yield
