"""Message templates: ``{placeholder}`` substitution that never sends a blank.

Only bare names are allowed (no attribute access, indexing or format specs), so a template
written by a campaign author cannot reach into Python objects. A placeholder without a
value is an error: preview reports it, and at send time the recipient is suppressed with
reason ``render_error`` rather than receiving a message with a hole in it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from services.care.exceptions import InvalidTemplate

HONORIFICS = {"male": "先生", "female": "女士"}
TIER_LABELS = {"diamond": "钻卡", "gold": "金卡", "silver": "银卡", "none": "普通"}
BUILTINS = frozenset(
    {"name", "surname", "honorific", "manager_name", "tier", "region", "city", "service_level"}
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATTER = string.Formatter()


class MissingValues(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def placeholders(template: str) -> list[str]:
    """The placeholders of ``template``; raises InvalidTemplate for anything but bare names."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise InvalidTemplate(f"模板格式错误：{exc}", field="template") from exc
    names: list[str] = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _NAME.match(field) or spec or conversion:
            raise InvalidTemplate(
                f"模板占位符 {{{field}}} 不合法：只能使用 {{name}} 这样的名称", field="template"
            )
        if field not in names:
            names.append(field)
    if not template.strip():
        raise InvalidTemplate("模板内容不能为空", field="template")
    return names


def values_of(customer: Mapping[str, Any]) -> dict[str, str]:
    """What a customer offers to templates: built-ins first, then custom attributes."""
    values: dict[str, str] = {}
    custom = customer.get("custom") or {}
    for key, value in custom.items():
        if value is not None and str(value).strip():
            values[str(key)] = str(value)
    name = str(customer.get("name") or "").strip()
    if name:
        values["name"] = name
        values["surname"] = name[0]
    # Profile's honorific carries the surname (王先生); an older copy without one gets the
    # same form here.
    title = HONORIFICS.get(str(customer.get("gender")))
    values["honorific"] = str(customer.get("honorific") or "") or (
        (name[0] + title if title else name) if name else "先生/女士"
    )
    tier = customer.get("tier")
    if tier:
        values["tier"] = TIER_LABELS.get(str(tier), str(tier))
    for key in ("region", "city", "service_level"):
        if customer.get(key):
            values[key] = str(customer[key])
    # Only profile's manager record names the manager: a customer without one gets a
    # render error, never a name left over in the custom attributes.
    values.pop("manager_name", None)
    manager = str(customer.get("manager_name") or "").strip()
    if manager:
        values["manager_name"] = manager
    return values


def repeated_surname(text: str, customer: Mapping[str, Any]) -> str | None:
    """The stretch of ``text`` that says the surname twice (马东马先生: a name followed by
    an honorific that already carries it), or None."""
    values = values_of(customer)
    name, honorific = values.get("name"), values["honorific"]
    if name and honorific != name and honorific.startswith(name[0]) and name + honorific in text:
        return name + honorific
    return None


def render(template: str, customer: Mapping[str, Any]) -> str:
    values = values_of(customer)
    missing = [n for n in placeholders(template) if n not in values]
    if missing:
        raise MissingValues(missing)
    return template.format_map(values)
