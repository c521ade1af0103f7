"""Pure value rules every service applies the same way: Chinese mobile numbers, provinces,
and instants that may not lie ahead of the clock.

Plain functions without state or I/O, so any service (and any contract) may import them
without importing another service's code.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator

from services.kit import clock

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

_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"1[3-9]\d{9}")
# What stands for the number of a customer whose personal data was erased (PIPL): 11
# characters like a number, so every column and lookup takes it, but led by 0, which no
# Chinese mobile number is, so it can never be mistaken for (or collide with) a real one.
STAND_IN = re.compile(r"0\d{10}")

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a reported instant may be (the reporter's clock may run fast)."""


def normalise_msisdn(raw: str) -> str:
    """A Chinese mobile number as its 11 digits; accepts +86 / 0086 / 86 and separators."""
    digits = _SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.fullmatch(digits):
        raise ValueError(f"{raw!r} 不是中国大陆手机号码（11 位，以 13-19 开头）")
    return digits


@lru_cache(maxsize=256)
def normalise_region(raw: str) -> str:
    """A province by its short name (广东省 -> 广东); raises ValueError for anything else."""
    region = raw.strip()
    if region not in REGION_TIME_ZONES:
        for suffix in _REGION_SUFFIXES:
            if region.endswith(suffix) and region[: -len(suffix)] in REGION_TIME_ZONES:
                region = region[: -len(suffix)]
                break
    if region not in REGION_TIME_ZONES:
        raise ValueError(f"未知地区 {raw!r}；请填写省级行政区，如 广东 或 新疆")
    return region


MAX_BATCH = 100
"""How many values one repeatable query parameter takes (``?msisdn=A&msisdn=B``): enough for
a gateway page of customers, bounded so one call is one bounded query."""


def is_stand_in(value: str) -> bool:
    return STAND_IN.fullmatch(value) is not None


def normalise_lookup(raw: str) -> str:
    """A number to look a customer up by: a mobile number, or the stand-in of an erased
    customer (which only lookups take; nothing is created under one)."""
    stripped = raw.strip()
    return stripped if is_stand_in(stripped) else normalise_msisdn(raw)


def normalise_msisdns(raw: list[str]) -> list[str]:
    """Each number normalised (an erased customer's stand-in kept as it is), duplicates
    dropped (first order kept), at most :data:`MAX_BATCH`; a bad one is named by its
    position."""
    if len(raw) > MAX_BATCH:
        raise ValueError(f"至多 {MAX_BATCH} 个号码（收到 {len(raw)} 个），请分批查询")
    numbers: dict[str, None] = {}
    for position, value in enumerate(raw, 1):
        try:
            numbers[normalise_lookup(value)] = None
        except ValueError as exc:
            raise ValueError(f"第 {position} 个：{exc}") from None
    return list(numbers)


def time_zone_of(region: str) -> str:
    return REGION_TIME_ZONES.get(region, DEFAULT_TIME_ZONE)


def not_ahead(value: datetime) -> datetime:
    """``value`` unless it lies more than :data:`MAX_CLOCK_SKEW` after now (a contact, a
    visit: what is recorded has happened)."""
    if value.tzinfo is not None and value > clock.now() + MAX_CLOCK_SKEW:
        raise ValueError("不能晚于当前时间（最多允许快 5 分钟）")
    return value


Msisdn = Annotated[str, AfterValidator(normalise_msisdn)]
"""A Chinese mobile number in any usual form, kept as its 11 digits."""
MsisdnList = Annotated[list[str], AfterValidator(normalise_msisdns)]
"""Up to :data:`MAX_BATCH` mobile numbers in any usual form, each kept as its 11 digits; a
repeatable query parameter in the routes (:data:`services.kit.app.MsisdnsQuery`)."""
Region = Annotated[str, AfterValidator(normalise_region)]
"""A province, kept by its short name."""
PastInstant = Annotated[datetime, AfterValidator(not_ahead)]
"""An instant that has happened (at most :data:`MAX_CLOCK_SKEW` ahead of our clock)."""
