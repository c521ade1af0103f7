"""The safelist's registry: the operations of an app build, registered from a file
(``keepwell gateway register-operations FILE``) into ``gateway.operation``.

A file is either Apollo's persisted-query manifest (what ``generate-persisted-query-
manifest`` writes: ``{"format": "apollo-persisted-query-manifest", "version": 1,
"operations": [{"id", "name", "type", "body"}]}``, each ``id`` the SHA-256 of its
``body``), or a ``.graphql`` document of many operations and their fragments. From a
``.graphql`` file each operation is registered as graphql-core prints it, followed by the
fragments it spreads (directly or not) in name order; the command prints each one's hash,
and an app sends that text, or the hash alone.

Every operation must be valid against the schema and within the default limits; a file
with any that is not registers nothing. Registering is idempotent (a hash names one text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    print_ast,
    validate,
)
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.config import GatewaySettings
from gateway.limits import measure, refusals
from gateway.models import Operation
from gateway.persisted import sha256_hex
from gateway.schema import schema
from services.kit import clock
from services.kit.errors import InvalidInput

MANIFEST_FORMAT = "apollo-persisted-query-manifest"
TYPES = ("query", "mutation", "subscription")


@dataclass(frozen=True)
class Registrable:
    id: str
    name: str | None
    type: str
    body: str


def read_operations(path: Path) -> list[Registrable]:
    """The operations of a manifest or ``.graphql`` file, each checked against the schema
    and the default limits; any problem refuses the whole file (one message, every
    problem)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        operations = _from_manifest(text)
    else:
        operations = _from_document(text)
    problems = [p for op in operations for p in _problems(op)]
    if not operations:
        problems.append("文件中没有操作")
    if problems:
        raise InvalidInput("; ".join(problems), field="file")
    return operations


def _from_manifest(text: str) -> list[Registrable]:
    try:
        manifest: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"清单不是有效的 JSON：{exc}", field="file") from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or manifest.get("version") != 1
        or not isinstance(manifest.get("operations"), list)
    ):
        raise InvalidInput(
            f'清单须为 {{"format": "{MANIFEST_FORMAT}", "version": 1, "operations": [...]}}',
            field="file",
        )
    found = []
    for i, entry in enumerate(manifest["operations"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("body"), str):
            raise InvalidInput(f"operations[{i}]：须有 body", field="file")
        body = entry["body"]
        declared = str(entry.get("id", "")).lower()
        if declared != sha256_hex(body):
            raise InvalidInput(
                f"operations[{i}]（{entry.get('name')}）：id 不是 body 的 SHA-256", field="file"
            )
        name = entry.get("name")
        found.append(
            Registrable(
                id=declared,
                name=str(name) if name else None,
                type=str(entry.get("type") or ""),
                body=body,
            )
        )
    return found


def _from_document(text: str) -> list[Registrable]:
    try:
        document = parse(text)
    except GraphQLError as exc:
        raise InvalidInput(f"无法解析：{exc.message}", field="file") from exc
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        used = _fragments_of(definition, fragments)
        body = print_ast(
            DocumentNode(definitions=(definition, *(fragments[n] for n in sorted(used))))
        )
        name = definition.name.value if definition.name else None
        found.append(Registrable(sha256_hex(body), name, definition.operation.value, body))
    return found


def _fragments_of(
    definition: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    """The fragments an operation spreads, directly or through other fragments."""
    used: set[str] = set()
    pending: list[Any] = [definition]
    while pending:
        for name in _spreads(pending.pop()):
            if name not in used and name in fragments:
                used.add(name)
                pending.append(fragments[name])
    return used


def _spreads(node: Any) -> Iterator[str]:
    selection_set = getattr(node, "selection_set", None)
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FragmentSpreadNode):
            yield selection.name.value
        else:
            yield from _spreads(selection)


def _problems(op: Registrable) -> list[str]:
    where = op.name or op.id[:12]
    try:
        document = parse(op.body)
    except GraphQLError as exc:
        return [f"{where}：无法解析：{exc.message}"]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return [f"{where}：须恰好一个操作（有 {len(operations)} 个）"]
    kind = operations[0].operation.value
    problems = []
    if op.type and op.type != kind:
        problems.append(f"{where}：type 为 {op.type}，而操作是 {kind}")
    problems += [f"{where}：{e.message}" for e in validate(schema._schema, document)]
    limits = GatewaySettings()
    measured = measure(schema._schema, document, None, limits.default_list_size)
    problems += [f"{where}：{e.message}" for e in refusals(measured, limits)]
    return problems


async def register(
    session: AsyncSession, operations: list[Registrable], by: str
) -> tuple[int, int]:
    """Register what is not yet registered: (new, already registered)."""
    ids = list(dict.fromkeys(op.id for op in operations))
    now = clock.now()
    rows = [
        {
            "id": op.id,
            "name": op.name[:200] if op.name else None,
            "type": _type(op),
            "body": op.body,
            "registered_by": by[:64],
            "registered_at": now,
        }
        for op in {op.id: op for op in operations}.values()
    ]
    statement = insert(Operation).values(rows).on_conflict_do_nothing(index_elements=["id"])
    before = await session.scalar(
        select(func.count()).select_from(Operation).where(col(Operation.id).in_(ids))
    )
    await session.execute(statement)
    return len(ids) - int(before or 0), int(before or 0)


def _type(op: Registrable) -> str:
    if op.type in TYPES:
        return op.type
    definition = next(
        d for d in parse(op.body).definitions if isinstance(d, OperationDefinitionNode)
    )
    return definition.operation.value
