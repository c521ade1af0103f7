"""Rules for the values of a customer archive, shared by the API and the bulk import."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator

from services.kit.clock import today
from services.profile.config import CustomAttribute

DEFAULT_TIME_ZONE = "Asia/Shanghai"

# Provincial-level divisions by their short names; Xinjiang keeps its own local time.
REGION_TIME_ZONES: dict[str, str] = {
    **dict.fromkeys(
        (
            "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏",
            "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南",
            "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏",
            "宁夏", "香港", "澳门",
        ),
        DEFAULT_TIME_ZONE,
    ),
    "新疆": "Asia/Urumqi",
}  # fmt: skip
_REGION_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")

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


_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalise_msisdn(raw: str) -> str:
    """A Chinese mobile number as its 11 digits; accepts +86 / 0086 / 86 and separators."""
    digits = _SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.fullmatch(digits):
        raise ValueError(f"{raw!r} is not a Chinese mobile number (11 digits starting 13-19)")
    return digits


@lru_cache(maxsize=256)
def normalise_region(raw: str) -> str:
    region = raw.strip()
    if region not in REGION_TIME_ZONES:
        for suffix in _REGION_SUFFIXES:
            if region.endswith(suffix) and region[: -len(suffix)] in REGION_TIME_ZONES:
                region = region[: -len(suffix)]
                break
    if region not in REGION_TIME_ZONES:
        raise ValueError(f"unknown region {raw!r}; use a province such as 广东 or 新疆")
    return region


def time_zone_of(region: str) -> str:
    return REGION_TIME_ZONES.get(region, DEFAULT_TIME_ZONE)


@lru_cache(maxsize=256)
def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai"
        ) from None
    return value


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _not_future(value: date) -> date:
    if value > today():
        raise ValueError("must not be in the future")
    return value


def _hour(value: int) -> int:
    if not 0 <= value <= 24:
        raise ValueError("must be an hour from 0 to 24")
    return value


Msisdn = Annotated[str, AfterValidator(normalise_msisdn)]
Region = Annotated[str, AfterValidator(normalise_region)]
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
            known = ", ".join(sorted(schema)) or "none are configured"
            return values, (field, f"unknown custom attribute; known: {known}")
        if value is None:
            continue  # null removes the attribute
        try:
            clean[key] = _custom_value(value, spec)
        except ValueError as exc:
            return values, (field, str(exc))
    if complete:
        for key, spec in schema.items():
            if spec.required and key not in clean:
                return values, (f"custom.{key}", "is required")
    return clean, None


def _custom_value(value: Any, spec: CustomAttribute) -> Any:
    match spec.type:
        case "string":
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if spec.max_length is not None and len(value) > spec.max_length:
                raise ValueError(f"must be at most {spec.max_length} characters")
            if spec.choices is not None and value not in spec.choices:
                raise ValueError(f"must be one of: {', '.join(spec.choices)}")
            return value
        case "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("must be an integer")
            return value
        case "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("must be a number")
            return value
        case "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        case "date":
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise ValueError("must be a date (YYYY-MM-DD)") from None
    raise ValueError(f"unsupported attribute type {spec.type}")
