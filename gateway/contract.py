"""The schema as a contract: ``gateway/schema.graphql`` is what apps are built against.

A test fails when the code's schema and the file differ; ``keepwell schema check`` lists
what a change would break for apps built against the committed file (a removed field or
type, a changed type, a new required argument), and ``keepwell schema export`` writes the
file anew once a change is meant.
"""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes, find_dangerous_changes

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")


def current_sdl() -> str:
    from gateway.schema import schema

    return schema.as_str() + "\n"


def changes(old_sdl: str, new_sdl: str) -> tuple[list[str], list[str]]:
    """(breaking, dangerous) changes from ``old_sdl`` to ``new_sdl``, described."""
    old, new = build_schema(old_sdl), build_schema(new_sdl)
    breaking = [f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)]
    dangerous = [f"{c.type.name}: {c.description}" for c in find_dangerous_changes(old, new)]
    return breaking, dangerous
