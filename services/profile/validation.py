"""Rules for the values of a customer archive, shared by the API and the bulk import."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator

from services.kit.clock import today
from services.kit.values import (
    DEFAULT_TIME_ZONE,
    REGION_TIME_ZONES,
    Msisdn,
    PastInstant,
    Region,
    normalise_msisdn,
    normalise_region,
    time_zone_of,
)
from services.profile.config import CustomAttribute

__all__ = [
    "DEFAULT_TIME_ZONE",
    "REGION_TIME_ZONES",
    "Msisdn",
    "PastInstant",
    "Region",
    "normalise_msisdn",
    "normalise_region",
    "time_zone_of",
]


# Two-character surnames: 欧阳芳 is 欧阳女士, not 欧女士.
COMPOUND_SURNAMES: tuple[str, ...] = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "慕容",
    "皇甫",
    "令狐",
)


def surname_of(name: str) -> str:
    return name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]


@lru_cache(maxsize=256)
def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"未知时区 {value!r}；请使用 IANA 名称，如 Asia/Shanghai") from None
    return value


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("不能为空")
    return value


def _not_future(value: date) -> date:
    if value > today():
        raise ValueError("不能晚于今天")
    return value


def _hour(value: int) -> int:
    if not 0 <= value <= 24:
        raise ValueError("须为 0 到 24 之间的小时数")
    return value


TimeZone = Annotated[str, AfterValidator(check_time_zone)]
Text = Annotated[str, BeforeValidator(_strip), AfterValidator(_not_blank)]
PastDate = Annotated[date, AfterValidator(_not_future)]
Hour = Annotated[int, AfterValidator(_hour)]


def check_custom(
    values: dict[str, Any], schema: Mapping[str, CustomAttribute], *, complete: bool
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """``values`` checked against the deployment's custom attributes: the normalised values
    and, when a rule is broken, ``(field, reason)``. ``complete`` checks required ones too."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        field = f"custom.{key}"
        spec = schema.get(key)
        if spec is None:
            known = ", ".join(sorted(schema)) or "未配置任何自定义属性"
            return values, (field, f"未知的自定义属性；可用的：{known}")
        if value is None:
            continue  # null removes the attribute
        try:
            clean[key] = _custom_value(value, spec)
        except ValueError as exc:
            return values, (field, str(exc))
    if complete:
        for key, spec in schema.items():
            if spec.required and key not in clean:
                return values, (f"custom.{key}", "必填")
    return clean, None


def _custom_value(value: Any, spec: CustomAttribute) -> Any:
    match spec.type:
        case "string":
            if not isinstance(value, str):
                raise ValueError("须为字符串")
            if spec.max_length is not None and len(value) > spec.max_length:
                raise ValueError(f"长度至多 {spec.max_length} 个字符")
            if spec.choices is not None and value not in spec.choices:
                raise ValueError(f"须为以下之一：{', '.join(spec.choices)}")
            return value
        case "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("须为整数")
            return value
        case "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("须为数字")
            return value
        case "boolean":
            if not isinstance(value, bool):
                raise ValueError("须为 true 或 false")
            return value
        case "date":
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise ValueError("须为日期（YYYY-MM-DD）") from None
    raise ValueError(f"不支持的属性类型 {spec.type}")
