"""The event catalogue as Markdown: every event, its producer, consumers and payload.

``keepwell events catalogue`` prints it; ARCHITECTURE.md carries it, and a test keeps the
two the same.
"""

from __future__ import annotations

from typing import Any

from services.kit.events.contracts import consumers_of, published

# Event types that exist only to exercise the machinery.
_INTERNAL_PREFIXES = ("probe.",)


def _fields(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    parts = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type") or (spec.get("$ref", "").rsplit("/", 1)[-1]) or "any"
        if "anyOf" in spec:
            kinds = [s.get("type") or s.get("$ref", "").rsplit("/", 1)[-1] for s in spec["anyOf"]]
            kind = " | ".join(k for k in kinds if k)
        parts.append(f"{name}{'' if name in required else '?'}: {kind}")
    return ", ".join(parts)


def catalogue_markdown() -> str:
    lines = [
        "| event | version | producer | consumers | payload |",
        "|---|---|---|---|---|",
    ]
    for name, cls in sorted(published().items()):
        if name.startswith(_INTERNAL_PREFIXES):
            continue
        subscribed = consumers_of(name)
        lines.append(
            f"| `{name}` | {cls.version} | {cls.producer} | {', '.join(subscribed) or '-'} "
            f"| {_fields(cls.model_json_schema())} |"
        )
    return "\n".join(lines)
