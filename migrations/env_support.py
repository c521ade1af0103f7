"""Which database objects belong to a service: shared by env.py and the migration test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def include_name_for(service: str) -> Callable[[str | None, str, Any], bool]:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return name == service if type_ == "schema" else True

    return include_name


def include_object_for(service: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table":
            # Each schema holds its own alembic_version table, which no model describes.
            return bool(obj.schema == service) and name != "alembic_version"
        return True

    return include_object
