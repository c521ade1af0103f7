"""Deterministic, streaming demo data for Keepwell (teams, managers, customers, daily usage).

Everything here is plain frozen dataclasses; no database code. The same ``seed`` and ``today``
always give identical output, independent of the Python process (no ``hash()`` randomisation).

Public API::

    data = generate(customers=10_000, seed=7, today=date(2025, 6, 30), drift_share=0.08)
    data.teams                  # tuple[Team, ...]     ids "T001", ...
    data.managers               # tuple[Manager, ...]  ids "M0001", ... (~1 per 150 customers, >= 2)
    data.customers()            # Iterator[Customer], customer-index order; start/stop to slice
    data.customer(123)          # one Customer by index
    data.usage(days=90)         # Iterator[DailyUsage], grouped by customer, days ascending,
                                #   window ending at ``end`` (default ``today``)
    data.usage(days=60, stop=200_000)            # usage of the first 200k customers only
    data.usage(days=60, customers=some_customers)  # usage of customers you already hold
    data.drift_of(123)          # DriftPlan: which churn signals customer 123 drifts into
    data.drifting()             # Iterator[(index, msisdn, DriftPlan)] of drifting customers only
    data.msisdn_of(123), data.index_of("13812345678")

    drift_of(index, seed=7, share=0.08)          # the same as data.drift_of, without a DemoData

Customers and usage rows are generated lazily with O(1) memory per customer (usage buffers one
customer's window), so a million customers or 200k x 60 days of usage stream without lists.

Realism notes:

* MSISDNs are 11 plain digits on real China Mobile / Unicom / Telecom prefixes, a bijection of
  the customer index (so unique without a "seen" set, and invertible: ``index_of``).
* A customer's region and city are those of their manager's team; 新疆 uses ``Asia/Urumqi``.
* Usage is customer-major. A drifting customer's signals start ``DriftPlan.onset_days`` (14-28)
  before the end of the usage window, whatever window you ask for.
* ``Customer.balance`` is the balance at the end of the usage window: the last ``DailyUsage``
  row of a customer has exactly that balance, earlier rows are reconstructed backwards
  (balance falls by ``spend`` each day and jumps up on top-up days).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from bisect import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import accumulate, combinations
from typing import Any, Final, Literal, TypeVar

from services.kit import clock
from services.profile.validation import surname_of

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "DEFAULT_SEED",
    "Customer",
    "DailyUsage",
    "DemoData",
    "Drift",
    "DriftPlan",
    "Gender",
    "Lifecycle",
    "Manager",
    "ServiceLevel",
    "Team",
    "Tier",
    "drift_of",
    "generate",
]

Gender = Literal["male", "female"]
Tier = Literal["diamond", "gold", "silver", "none"]
ServiceLevel = Literal["A", "B", "C"]
Lifecycle = Literal["acquisition", "growth", "maturity", "decline", "churn"]

_T = TypeVar("_T")

DEFAULT_SEED: Final = 7
DEFAULT_DRIFT_SHARE: Final = 0.08

# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    region: str
    supervisor_name: str


@dataclass(frozen=True, slots=True)
class Manager:
    id: str
    name: str
    team_id: str
    phone: str


# Customer and DailyUsage are not slotted: the generators build them through ``__dict__``
# (see ``_build``), which is several times faster than the frozen-dataclass ``__init__``.
@dataclass(frozen=True)
class Customer:
    msisdn: str
    name: str
    gender: Gender
    birthday: date
    region: str
    city: str
    time_zone: str
    join_date: date
    plan_name: str
    plan_fee: Decimal
    contract_end: date | None
    balance: Decimal
    tier: Tier
    service_level: ServiceLevel
    lifecycle: Lifecycle
    manager_id: str
    interests: tuple[str, ...]
    tags: tuple[str, ...]
    preferences: tuple[str, ...]
    taboos: tuple[str, ...]
    sms_opt_out: bool
    preferred_contact_hours: tuple[int, int]
    important_dates: tuple[tuple[str, date], ...]

    @property
    def surname(self) -> str:
        return surname_of(self.name)

    @property
    def honorific(self) -> str:
        """How messages address the customer, e.g. 王先生 / 欧阳女士."""
        return self.surname + ("女士" if self.gender == "female" else "先生")


@dataclass(frozen=True)
class DailyUsage:
    msisdn: str
    day: date
    outgoing_calls: int
    minutes: int
    data_mb: int
    spend: Decimal
    balance: Decimal  # end of day
    competitor_hotline_calls: int  # calls to 10086/10010/10000 of another operator
    forwarded_to_other_network: int  # calls forwarded to a number on another network
    other_network_call_share: float  # 0..1, share of outgoing calls into other networks
    competitor_marketing_contacts: int


class Drift(enum.Flag):
    """Ways a customer drifts toward churn, one per churn signal; combinable."""

    NONE = 0
    USAGE_DROP = enum.auto()
    ZERO_CALLS = enum.auto()
    COMPETITOR_HOTLINE = enum.auto()
    CALL_FORWARDING = enum.auto()
    OTHER_NETWORK = enum.auto()
    COMPETITOR_MARKETING = enum.auto()
    SPEND_BELOW_PLAN = enum.auto()
    LOW_BALANCE = enum.auto()


@dataclass(frozen=True, slots=True)
class DriftPlan:
    kinds: Drift
    onset_days: int  # the drift starts this many days before the end of the usage window

    @property
    def drifting(self) -> bool:
        return self.kinds is not Drift.NONE


_NO_DRIFT: Final = DriftPlan(Drift.NONE, 0)

_new = object.__new__
_set = object.__setattr__


def _build(cls: type[Any], fields: dict[str, Any]) -> Any:
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj


# ---------------------------------------------------------------------------------------------
# Hashing: order-independent randomness for per-index decisions (drift, msisdn, RNG seeds)
# ---------------------------------------------------------------------------------------------

_M64: Final = (1 << 64) - 1


def _splitmix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _base(seed: int, salt: int) -> int:
    return _splitmix(_splitmix(seed & _M64) ^ salt)


_SALT_DRIFT: Final = 0xD1
_SALT_CUSTOMERS: Final = 0xC5
_SALT_USAGE: Final = 0x05
_SALT_STAFF: Final = 0x57
_SALT_MSISDN: Final = 0x3A

_U53: Final = 1.0 / (1 << 53)


def _unit(h: int) -> float:
    return (h >> 11) * _U53


# ---------------------------------------------------------------------------------------------
# Reference tables
# ---------------------------------------------------------------------------------------------


def _cum(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    cum = [w / total for w in accumulate(weights)]
    cum[-1] = 2.0  # r() < 1 always lands inside, whatever the float rounding
    return cum


def _weighted_table(entries: Iterable[tuple[_T, int]]) -> tuple[_T, ...]:
    """Each value repeated by its integer weight: ``table[int(r() * len(table))]`` is a
    weighted pick without the cost of ``bisect``."""
    return tuple(value for value, weight in entries for _ in range(weight))


_CHINA_MOBILE: Final = [
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "178",
    "182",
    "183",
    "184",
    "187",
    "188",
    "198",
]
_CHINA_UNICOM: Final = ["130", "131", "132", "155", "156", "166", "175", "176", "185", "186"]
_CHINA_TELECOM: Final = ["133", "153", "173", "177", "180", "181", "189", "199"]
# Staff phones live in 1380xxxxxxx, which customers never get, so the two never collide.
_STAFF_BLOCK: Final = "1380"
# 1349 is the old satellite-phone block, not an ordinary mobile number.
_EXCLUDED_BLOCKS: Final = frozenset({_STAFF_BLOCK, "1349"})
# A "slot" is a 4-digit block (prefix + next digit) of 10^7 numbers.
_SLOTS: Final = tuple(
    p + str(d)
    for p in (*_CHINA_MOBILE, *_CHINA_UNICOM, *_CHINA_TELECOM)
    for d in range(10)
    if p + str(d) not in _EXCLUDED_BLOCKS
)
_SLOT_INDEX: Final = {s: i for i, s in enumerate(_SLOTS)}
_BLOCK_SIZE: Final = 10**7
_MSISDN_SPACE: Final = len(_SLOTS) * _BLOCK_SIZE

# Province -> (weight, time zone, [(city, weight, districts)]). Districts name the teams.
_REGIONS: Final[tuple[tuple[str, int, str, tuple[tuple[str, int, tuple[str, ...]], ...]], ...]] = (
    (
        "广东",
        16,
        "Asia/Shanghai",
        (
            ("广州", 4, ("天河", "越秀", "海珠", "番禺")),
            ("深圳", 4, ("福田", "南山", "罗湖", "宝安")),
            ("佛山", 2, ("禅城", "南海", "顺德")),
            ("东莞", 2, ("南城", "东城", "松山湖")),
        ),
    ),
    (
        "江苏",
        10,
        "Asia/Shanghai",
        (
            ("南京", 3, ("玄武", "鼓楼", "建邺")),
            ("苏州", 3, ("姑苏", "工业园区", "吴中")),
            ("无锡", 2, ("梁溪", "滨湖")),
        ),
    ),
    (
        "浙江",
        9,
        "Asia/Shanghai",
        (
            ("杭州", 4, ("西湖", "上城", "滨江", "萧山")),
            ("宁波", 2, ("海曙", "鄞州", "江北")),
            ("温州", 2, ("鹿城", "瓯海")),
        ),
    ),
    ("北京", 8, "Asia/Shanghai", (("北京", 1, ("朝阳", "海淀", "东城", "西城")),)),
    ("上海", 8, "Asia/Shanghai", (("上海", 1, ("浦东", "黄浦", "徐汇", "静安")),)),
    (
        "山东",
        7,
        "Asia/Shanghai",
        (
            ("济南", 3, ("历下", "市中", "槐荫")),
            ("青岛", 3, ("市南", "崂山", "黄岛")),
            ("烟台", 1, ("芝罘", "莱山")),
        ),
    ),
    (
        "四川",
        6,
        "Asia/Shanghai",
        (("成都", 4, ("锦江", "武侯", "青羊", "高新")), ("绵阳", 1, ("涪城", "游仙"))),
    ),
    (
        "福建",
        5,
        "Asia/Shanghai",
        (
            ("福州", 2, ("鼓楼", "台江", "仓山")),
            ("厦门", 2, ("思明", "湖里")),
            ("泉州", 1, ("丰泽", "晋江")),
        ),
    ),
    (
        "河南",
        5,
        "Asia/Shanghai",
        (("郑州", 3, ("金水", "二七", "中原")), ("洛阳", 1, ("西工", "洛龙"))),
    ),
    (
        "湖北",
        5,
        "Asia/Shanghai",
        (("武汉", 3, ("江汉", "武昌", "洪山")), ("宜昌", 1, ("西陵", "伍家岗"))),
    ),
    (
        "湖南",
        4,
        "Asia/Shanghai",
        (("长沙", 3, ("岳麓", "芙蓉", "天心")), ("株洲", 1, ("天元", "芦淞"))),
    ),
    (
        "陕西",
        3,
        "Asia/Shanghai",
        (("西安", 3, ("雁塔", "碑林", "未央")), ("咸阳", 1, ("秦都", "渭城"))),
    ),
    (
        "辽宁",
        3,
        "Asia/Shanghai",
        (("沈阳", 2, ("和平", "沈河", "浑南")), ("大连", 2, ("中山", "沙河口", "甘井子"))),
    ),
    (
        "云南",
        2,
        "Asia/Shanghai",
        (("昆明", 3, ("五华", "盘龙", "官渡")), ("曲靖", 1, ("麒麟", "沾益"))),
    ),
    (
        "新疆",
        2,
        "Asia/Urumqi",
        (("乌鲁木齐", 3, ("天山", "沙依巴克", "新市")), ("克拉玛依", 1, ("独山子", "白碱滩"))),
    ),
)

# Rough frequency per 1000 people; the long tail is folded into the listed names.
_SURNAMES: Final = (
    ("王", 71), ("李", 70), ("张", 67), ("刘", 53), ("陈", 46), ("杨", 32), ("黄", 24),
    ("赵", 23), ("吴", 21), ("周", 19), ("徐", 17), ("孙", 15), ("马", 15), ("朱", 13),
    ("胡", 13), ("郭", 12), ("何", 12), ("林", 11), ("高", 11), ("罗", 9), ("郑", 9),
    ("梁", 9), ("谢", 8), ("宋", 7), ("唐", 7), ("许", 7), ("韩", 7), ("冯", 6), ("邓", 6),
    ("曹", 6), ("彭", 6), ("曾", 6), ("肖", 6), ("田", 5), ("董", 5), ("袁", 5), ("潘", 5),
    ("于", 5), ("蒋", 5), ("蔡", 5), ("余", 5), ("杜", 5), ("叶", 4), ("程", 4), ("苏", 4),
    ("魏", 4), ("吕", 4), ("丁", 4), ("任", 4), ("沈", 4), ("姚", 4), ("卢", 4), ("姜", 3),
    ("崔", 3), ("钟", 3), ("谭", 3), ("陆", 3), ("汪", 3), ("范", 3), ("金", 3), ("石", 3),
    ("廖", 3), ("贾", 3), ("夏", 3), ("韦", 3), ("方", 3), ("白", 2), ("邹", 2), ("孟", 2),
    ("熊", 2), ("秦", 2), ("邱", 2), ("江", 2), ("尹", 2), ("薛", 2), ("段", 2), ("雷", 2),
    ("侯", 2), ("史", 2), ("陶", 2), ("黎", 2), ("贺", 2), ("顾", 2), ("毛", 2), ("郝", 2),
    ("龚", 2), ("邵", 2), ("万", 2), ("钱", 2), ("严", 2), ("武", 2), ("戴", 2), ("莫", 1),
    ("孔", 1), ("向", 1), ("汤", 1), ("欧阳", 0.5), ("司马", 0.1), ("上官", 0.1), ("诸葛", 0.1),
)  # fmt: skip
_SURNAME_LIST: Final = tuple(s for s, _ in _SURNAMES)
_SURNAME_CUM: Final = _cum([w for _, w in _SURNAMES])

# Given names follow the fashion of the birth decade; people born before 1975 rarely carry
# the names popular in the 1990s and vice versa.
_MALE_SINGLE: Final = tuple(
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁峰建亮成东海毅坤阳"
)
_FEMALE_SINGLE: Final = tuple(
    "芳娜敏静丽艳娟霞秀英玲燕婷雪琳倩颖慧洁萍红梅琴蕾薇璐瑶欣怡佳莉兰凤晶丹"
)
_MALE_OLD: Final = tuple(
    [
        "建国",
        "建华",
        "国强",
        "国庆",
        "志强",
        "志明",
        "建军",
        "海涛",
        "德明",
        "永强",
        "卫东",
        "红军",
        "文斌",
        "立新",
        "振华",
        "长青",
        "保国",
        "庆丰",
        "金龙",
        "家明",
        "建平",
        "永刚",
        "光明",
        "国华",
    ]
)
_MALE_YOUNG: Final = tuple(
    [
        "浩然",
        "宇航",
        "俊杰",
        "志远",
        "天宇",
        "博文",
        "家豪",
        "鹏飞",
        "文博",
        "晨阳",
        "子豪",
        "思远",
        "一鸣",
        "明轩",
        "嘉伟",
        "俊豪",
        "伟杰",
        "振宇",
        "晓东",
        "海波",
        "子健",
        "皓宇",
        "泽宇",
        "俊宇",
    ]
)
_FEMALE_OLD: Final = tuple(
    [
        "秀英",
        "桂英",
        "秀兰",
        "玉兰",
        "桂兰",
        "淑珍",
        "凤英",
        "玉梅",
        "秀珍",
        "丽华",
        "美华",
        "春梅",
        "红梅",
        "淑华",
        "慧敏",
        "丽娟",
        "海燕",
        "晓红",
        "玉珍",
        "素芬",
        "彩霞",
        "翠萍",
        "桂芳",
        "美玲",
    ]
)
_FEMALE_YOUNG: Final = tuple(
    [
        "欣怡",
        "雅婷",
        "佳怡",
        "思彤",
        "梦瑶",
        "晓琳",
        "婉清",
        "静怡",
        "思雨",
        "雨欣",
        "佳琪",
        "晓雯",
        "诗琪",
        "雨婷",
        "梦琪",
        "丽娜",
        "晓燕",
        "婷婷",
        "雪莹",
        "佳慧",
        "欣然",
        "雅琴",
        "怡然",
        "梦洁",
    ]
)
# Index = female * 2 + young.
_SINGLE_SHARE: Final = 0.3


def _name_pool(singles: Sequence[str], doubles: Sequence[str]) -> tuple[str, ...]:
    # One flat pool with singles at _SINGLE_SHARE saves a draw and a branch per customer.
    ws = round(_SINGLE_SHARE * 10) * len(doubles)
    wd = round((1 - _SINGLE_SHARE) * 10) * len(singles)
    return _weighted_table([*((n, ws) for n in singles), *((n, wd) for n in doubles)])


_YOUNG_FROM: Final = date(1975, 1, 1).toordinal()

_PLANS: Final = (
    ("4G飞享套餐 58元", 58, 5),
    ("4G畅享套餐 88元", 88, 9),
    ("5G畅享套餐 128元", 128, 14),
    ("5G畅享套餐 169元", 169, 12),
    ("5G畅享套餐 199元", 199, 16),
    ("5G融合套餐 239元", 239, 12),
    ("5G智享套餐 299元", 299, 12),
    ("5G尊享套餐 399元", 399, 10),
    ("5G尊享套餐 599元", 599, 7),
    ("5G尊享套餐 888元", 888, 3),
)
_PLAN_ROWS: Final = tuple(
    (name, Decimal(fee).quantize(Decimal("0.01")), fee) for name, fee, _ in _PLANS
)
_PLAN_CUM: Final = _cum([w for *_, w in _PLANS])

# Tier follows value: plan fee scaled by a personal factor (extra spend, family lines) plus
# loyalty; thresholds give roughly 6% diamond, 20% gold, 33% silver, 41% non-member.
_TIER_THRESHOLDS: Final = ((660.0, "diamond"), (340.0, "gold"), (220.0, "silver"))
_SERVICE_LEVELS: Final[tuple[ServiceLevel, ...]] = ("A", "B", "C")
_SERVICE_CUM: Final[dict[str, list[float]]] = {
    "diamond": _cum([85, 15, 0]),
    "gold": _cum([35, 55, 10]),
    "silver": _cum([5, 50, 45]),
    "none": _cum([0, 20, 80]),
}

_INTERESTS: Final = tuple(
    [
        "高尔夫",
        "茶艺",
        "书法",
        "摄影",
        "钓鱼",
        "旅游",
        "健身",
        "马拉松",
        "红酒",
        "收藏",
        "骑行",
        "登山",
        "瑜伽",
        "烹饪",
        "国学",
        "围棋",
        "太极",
        "音乐",
        "阅读",
        "网球",
        "羽毛球",
        "自驾游",
        "美食",
        "投资理财",
        "育儿",
        "花艺",
    ]
)
_TABOOS: Final = tuple(
    [
        "不喜欢电话打扰",
        "忌讳数字4",
        "反感营销短信",
        "勿在午休时间联系",
        "不接受上门拜访",
        "忌讳送钟",
        "周末勿扰",
        "不喜欢被催缴话费",
        "忌讳白色包装礼品",
        "不愿透露家庭信息",
    ]
)
_PREFERENCES: Final = tuple(
    [
        "偏好微信沟通",
        "偏好短信通知",
        "偏好电话沟通",
        "喜欢上门拜访",
        "只在工作日联系",
        "偏好晚间联系",
        "关注流量优惠",
        "关注话费返还",
        "喜欢积分兑换",
        "偏好纸质账单",
        "关注新款手机",
        "喜欢会员活动",
    ]
)
# A preference that contradicts a taboo would read as a data error to a manager.
_CONFLICTS: Final = frozenset(
    {
        ("不喜欢电话打扰", "偏好电话沟通"),
        ("不接受上门拜访", "喜欢上门拜访"),
        ("反感营销短信", "偏好短信通知"),
        ("周末勿扰", "只在工作日联系"),  # not a contradiction, but redundant
    }
)
# Index = female * 2 + young.
_GIVEN_NAMES: Final = (
    _name_pool(_MALE_SINGLE, _MALE_OLD),
    _name_pool(_MALE_SINGLE, _MALE_YOUNG),
    _name_pool(_FEMALE_SINGLE, _FEMALE_OLD),
    _name_pool(_FEMALE_SINGLE, _FEMALE_YOUNG),
)
# Tag sets as weighted tables of ready-made tuples: one draw per field instead of several.
# Interests: 1 tag 30%, 2 tags 45%, 3 tags 25%.
_INTEREST_SETS: Final = _weighted_table(
    [
        *(((t,), 120) for t in _INTERESTS),
        *((pair, 14) for pair in combinations(_INTERESTS, 2)),
        *((triple, 1) for triple in combinations(_INTERESTS, 3)),
    ]
)
# Taboos: none 55%, 1 taboo 35%, 2 taboos 10%.
_TABOO_SETS: Final = _weighted_table(
    [((), 495), *(((t,), 32) for t in _TABOOS), *((p, 2) for p in combinations(_TABOOS, 2))]
)
# Preferences: none 35%, 1 preference 45%, 2 preferences 20%.
_PREFERENCE_SETS: Final = _weighted_table(
    [
        ((), 347),
        *(((p,), 37) for p in _PREFERENCES),
        *((p, 3) for p in combinations(_PREFERENCES, 2)),
    ]
)
_BLOCKED_PREFERENCES: Final = {
    taboos: frozenset(p for t, p in _CONFLICTS if t in taboos)
    for taboos in set(_TABOO_SETS)
    if any(t in taboos for t, _ in _CONFLICTS)
}
# Operator labels (客户标签) that campaign audiences are chosen by.
TAG_BUSINESS_TRAVEL: Final = "商旅客户"
TAG_ROAMING: Final = "国际漫游"
TAG_AFFLUENT_FAMILY: Final = "高端家庭"
TAG_BUSINESS_OWNER: Final = "企业主"
TAG_BROADBAND: Final = "融合宽带"
TAG_SENIOR: Final = "银发客户"
TAG_LOYAL: Final = "十年老客户"
TAG_5G: Final = "5G尝鲜"
_CONTACT_HOURS: Final = _weighted_table(
    [
        ((9, 20), 30),
        ((9, 18), 20),
        ((10, 21), 15),
        ((9, 12), 10),
        ((14, 18), 10),
        ((19, 21), 10),
        ((12, 14), 5),
    ]
)

_DAYS_PER_YEAR: Final = 365.2425
_CENT: Final = Decimal("0.01")


def _money(cents: int) -> Decimal:
    return Decimal(cents) * _CENT


_CENTS_TABLE_SIZE: Final = 20_000
_cents_table: list[Decimal] = []


def _cents() -> list[Decimal]:
    # Daily spends repeat a lot; a shared table avoids building a Decimal per usage row.
    if not _cents_table:
        _cents_table.extend(_money(c) for c in range(_CENTS_TABLE_SIZE))
    return _cents_table


_CN_DIGITS: Final = "零一二三四五六七八九"


def _cn_number(n: int) -> str:
    """1 -> 一, 10 -> 十, 12 -> 十二, 23 -> 二十三 (team numbers; large values stay readable)."""
    if n < 10:
        return _CN_DIGITS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return (_CN_DIGITS[tens] if tens > 1 else "") + "十" + (_CN_DIGITS[ones] if ones else "")
    return str(n)


def _name(rng: random.Random, female: bool, young: bool) -> str:
    surname = _SURNAME_LIST[bisect(_SURNAME_CUM, rng.random())]
    return surname + rng.choice(_GIVEN_NAMES[female * 2 + young])


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------

_DRIFT_KINDS: Final = (
    Drift.USAGE_DROP,
    Drift.ZERO_CALLS,
    Drift.COMPETITOR_HOTLINE,
    Drift.CALL_FORWARDING,
    Drift.OTHER_NETWORK,
    Drift.COMPETITOR_MARKETING,
    Drift.SPEND_BELOW_PLAN,
    Drift.LOW_BALANCE,
)
_DRIFT_CUM: Final = _cum([20, 10, 12, 10, 12, 12, 12, 12])


def _drift_limit(share: float) -> int:
    """Customer hashes below this limit drift; an int compare keeps the per-customer test cheap."""
    return int(share * (1 << 64))


def _drift_from_hash(h: int, limit: int) -> DriftPlan:
    if h >= limit:
        return _NO_DRIFT
    h = _splitmix(h)
    kinds = _DRIFT_KINDS[bisect(_DRIFT_CUM, _unit(h))]
    # Real leavers usually show more than one signal at once.
    for p in (0.45, 0.15):
        h = _splitmix(h)
        if _unit(h) >= p:
            break
        h = _splitmix(h)
        kinds |= _DRIFT_KINDS[bisect(_DRIFT_CUM, _unit(h))]
    h = _splitmix(h)
    return DriftPlan(kinds, 14 + h % 15)


def drift_of(index: int, seed: int = DEFAULT_SEED, share: float = DEFAULT_DRIFT_SHARE) -> DriftPlan:
    """Whether and how customer ``index`` drifts toward churn; O(1), needs no DemoData."""
    return _drift_from_hash(_splitmix(_base(seed, _SALT_DRIFT) ^ index), _drift_limit(share))


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------

# Customers draw from one RNG per block of this many indices: seeding a Mersenne Twister costs
# about as much as generating a customer, yet random access only has to replay one block.
_CUSTOMER_BLOCK: Final = 1024
_MANAGER_LOAD: Final = 150
_TEAM_SIZE: Final = 8


def generate(
    customers: int,
    seed: int = DEFAULT_SEED,
    today: date | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DemoData:
    """Plan a demo data set of ``customers`` customers; rows are produced lazily.

    ``today`` anchors every relative date (ages, contract ends, the usage window); it defaults
    to the current date in China, so pass it explicitly when you need reproducible output.
    """
    return DemoData(customers, seed, today or clock.today(), drift_share)


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights`` (ties go to the earlier entry)."""
    wsum = float(sum(weights))
    exact = [total * w / wsum for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _weighted_round_robin(weights: Sequence[int], n: int) -> list[int]:
    """``n`` picks interleaved by weight (smooth weighted round robin), e.g. 广州 深圳 广州 佛山."""
    current = [0] * len(weights)
    total = sum(weights)
    picks: list[int] = []
    for _ in range(n):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[best] -= total
        picks.append(best)
    return picks


def _coprime_multiplier(h: int, modulus: int) -> int:
    a = (h % (modulus - 3)) + 2
    while _gcd(a, modulus) != 1:
        a += 1
    return a


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


class DemoData:
    """A planned demo data set. Teams and managers are materialised; the rest streams."""

    def __init__(self, customers: int, seed: int, today: date, drift_share: float) -> None:
        if customers < 0:
            raise ValueError("customers must be >= 0")
        if customers > _MSISDN_SPACE:
            raise ValueError(f"at most {_MSISDN_SPACE} customers have distinct numbers")
        if not 0.0 <= drift_share <= 1.0:
            raise ValueError("drift_share must be within 0..1")
        self.customer_count: Final = customers
        self.seed: Final = seed
        self.today: Final = today
        self.drift_share: Final = drift_share

        # The MSISDN of index i is an affine permutation over all slots, then a per-slot affine
        # permutation of the last 7 digits: consecutive customers get unrelated-looking numbers.
        h = _base(seed, _SALT_MSISDN)
        self._perm_a = _coprime_multiplier(h, _MSISDN_SPACE)
        h = _splitmix(h)
        self._perm_b = h % _MSISDN_SPACE
        h = _splitmix(h)
        self._perm_c = _coprime_multiplier(h, _BLOCK_SIZE)
        offsets = []
        for _ in _SLOTS:
            h = _splitmix(h)
            offsets.append(h % _BLOCK_SIZE)
        self._perm_d: tuple[int, ...] = tuple(offsets)
        self._drift_base = _base(seed, _SALT_DRIFT)
        self._drift_limit = _drift_limit(drift_share)
        self._customer_base = _base(seed, _SALT_CUSTOMERS)
        self._usage_base = _base(seed, _SALT_USAGE)

        self.teams: tuple[Team, ...]
        self.managers: tuple[Manager, ...]
        # Per manager: (manager_id, region, city, time_zone), indexed like ``managers``.
        self._manager_places: tuple[tuple[str, str, str, str], ...]
        self._build_staff()

    def __repr__(self) -> str:
        return (
            f"DemoData(customers={self.customer_count}, seed={self.seed}, "
            f"today={self.today.isoformat()}, drift_share={self.drift_share})"
        )

    # -- staff ---------------------------------------------------------------------------------

    def _build_staff(self) -> None:
        rng = random.Random(_base(self.seed, _SALT_STAFF))
        manager_total = max(2, round(self.customer_count / _MANAGER_LOAD))
        per_region = _allocate(manager_total, [w for _, w, _, _ in _REGIONS])
        teams: list[Team] = []
        managers: list[Manager] = []
        places: list[tuple[str, str, str, str]] = []
        phone_a = _coprime_multiplier(rng.getrandbits(64), _BLOCK_SIZE)
        phone_b = rng.randrange(_BLOCK_SIZE)
        for (region, _, tz, cities), count in zip(_REGIONS, per_region, strict=True):
            if count == 0:
                continue
            team_count = -(-count // _TEAM_SIZE)
            city_picks = _weighted_round_robin([w for _, w, _ in cities], team_count)
            per_city = [0] * len(cities)
            region_teams: list[tuple[Team, str]] = []
            for ci in city_picks:
                city, _, districts = cities[ci]
                k = per_city[ci]
                per_city[ci] += 1
                district = districts[k % len(districts)]
                group = _cn_number(k // len(districts) + 1)
                team = Team(
                    id=f"T{len(teams) + 1:03d}",
                    name=f"{city}{district}VIP维系{group}组",
                    region=region,
                    supervisor_name=_name(rng, rng.random() < 0.4, rng.random() < 0.3),
                )
                teams.append(team)
                region_teams.append((team, city))
            for k in range(count):
                team, city = region_teams[k % team_count]
                n = len(managers)
                manager = Manager(
                    id=f"M{n + 1:04d}",
                    name=_name(rng, rng.random() < 0.55, rng.random() < 0.75),
                    team_id=team.id,
                    phone=_STAFF_BLOCK + f"{(phone_a * n + phone_b) % _BLOCK_SIZE:07d}",
                )
                managers.append(manager)
                places.append((manager.id, region, city, tz))
        self.teams = tuple(teams)
        self.managers = tuple(managers)
        self._manager_places = tuple(places)

    # -- numbers and drift -----------------------------------------------------------------------

    def msisdn_of(self, index: int) -> str:
        slot, rest = divmod((self._perm_a * index + self._perm_b) % _MSISDN_SPACE, _BLOCK_SIZE)
        rest = (self._perm_c * rest + self._perm_d[slot]) % _BLOCK_SIZE
        return f"{_SLOTS[slot]}{rest:07d}"

    def index_of(self, msisdn: str) -> int:
        """Inverse of ``msisdn_of``; raises ValueError for a number this data set never issues."""
        slot = _SLOT_INDEX.get(msisdn[:4]) if len(msisdn) == 11 and msisdn.isdigit() else None
        if slot is None:
            raise ValueError(f"not a demo number: {msisdn!r}")
        rest = int(msisdn[4:])
        rest = (rest - self._perm_d[slot]) * pow(self._perm_c, -1, _BLOCK_SIZE) % _BLOCK_SIZE
        x = slot * _BLOCK_SIZE + rest
        index = (x - self._perm_b) * pow(self._perm_a, -1, _MSISDN_SPACE) % _MSISDN_SPACE
        if index >= self.customer_count:
            raise ValueError(f"not a demo number: {msisdn!r}")
        return index

    def drift_of(self, index: int) -> DriftPlan:
        return _drift_from_hash(_splitmix(self._drift_base ^ index), self._drift_limit)

    def drifting(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, str, DriftPlan]]:
        """(index, msisdn, plan) of every drifting customer in ``start:stop``; cheap."""
        base, limit = self._drift_base, self._drift_limit
        for i in range(*self._bounds(start, stop)):
            h = _splitmix(base ^ i)
            if h < limit:
                yield i, self.msisdn_of(i), _drift_from_hash(h, limit)

    def _bounds(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.customer_count
        stop = n if stop is None else min(stop, n)
        if start < 0 or stop < 0:
            raise ValueError("start and stop must be >= 0")
        return start, max(start, stop)

    # -- customers -------------------------------------------------------------------------------

    def customer(self, index: int) -> Customer:
        if not 0 <= index < self.customer_count:
            raise IndexError(index)
        return next(self.customers(index, index + 1))

    def customers(self, start: int = 0, stop: int | None = None) -> Iterator[Customer]:
        """Customers ``start:stop`` in index order; each block of 1024 has its own RNG."""
        lo, hi = self._bounds(start, stop)
        block = lo // _CUSTOMER_BLOCK
        while block * _CUSTOMER_BLOCK < hi:
            yield from self._customer_block(block, lo, hi)
            block += 1

    def _customer_block(self, block: int, lo: int, hi: int) -> Iterator[Customer]:
        # One long function with everything bound to locals: this loop is the hot path of
        # ``keepwell seed`` and of the million-customer benchmarks.
        rng = random.Random(_splitmix(self._customer_base ^ block))
        r = rng.random
        first = block * _CUSTOMER_BLOCK
        last = min(first + _CUSTOMER_BLOCK, hi)

        today = self.today
        today_ord = today.toordinal()
        # Ages 22..75 inclusive on ``today``.
        born_latest = _add_years(today, -22).toordinal()
        born_span = born_latest - _add_years(today, -76).toordinal() - 1
        join_span = today_ord - _add_years(today, -20).toordinal()
        fromordinal = date.fromordinal
        young_from = _YOUNG_FROM
        surnames, surname_cum = _SURNAME_LIST, _SURNAME_CUM
        given_names = _GIVEN_NAMES
        plans, plan_cum = _PLAN_ROWS, _PLAN_CUM
        service_cum, service_levels = _SERVICE_CUM, _SERVICE_LEVELS
        (t_diamond, _), (t_gold, _), (t_silver, _) = _TIER_THRESHOLDS
        interest_sets, n_interest_sets = _INTEREST_SETS, len(_INTEREST_SETS)
        taboo_sets, n_taboo_sets = _TABOO_SETS, len(_TABOO_SETS)
        pref_sets, n_pref_sets = _PREFERENCE_SETS, len(_PREFERENCE_SETS)
        blocked_prefs = _BLOCKED_PREFERENCES
        hours, n_hours = _CONTACT_HOURS, len(_CONTACT_HOURS)
        places = self._manager_places
        n_managers = len(places)
        perm_a, perm_b, perm_c, perm_d = self._perm_a, self._perm_b, self._perm_c, self._perm_d
        space, block_size, slots = _MSISDN_SPACE, _BLOCK_SIZE, _SLOTS
        drift_base, drift_limit = self._drift_base, self._drift_limit
        year = _DAYS_PER_YEAR
        cent = _CENT
        low_balance = Drift.LOW_BALANCE
        new, set_ = _new, _set
        template = dict.fromkeys(f.name for f in dataclasses.fields(Customer)).copy

        for i in range(first, last):
            slot, rest = divmod((perm_a * i + perm_b) % space, block_size)
            msisdn = slots[slot] + str((perm_c * rest + perm_d[slot]) % block_size).zfill(7)
            # _splitmix(drift_base ^ i), inlined: a call costs as much as the arithmetic.
            h = ((drift_base ^ i) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
            h ^= h >> 31
            drift = _drift_from_hash(h, drift_limit) if h < drift_limit else None

            female = r() < 0.48
            # Triangular age distribution peaking around 48: VIPs skew middle-aged.
            birth_ord = born_latest - int((r() + r()) * 0.5 * born_span)
            pool = given_names[female * 2 + (birth_ord >= young_from)]
            name = surnames[bisect(surname_cum, r())] + pool[int(r() * len(pool))]
            manager_id, region, city, tz = places[int(r() * n_managers)]

            join_ord = today_ord - int(r() * join_span)
            min_join = birth_ord + 5844  # nobody opens a contract before 16
            if join_ord < min_join:
                join_ord = min_join
            years = (today_ord - join_ord) / year

            plan_name, plan_fee, fee = plans[bisect(plan_cum, r())]
            score = fee * (0.7 + 0.6 * r()) + years * 4.0
            tier: Tier
            if score >= t_diamond:
                tier = "diamond"
            elif score >= t_gold:
                tier = "gold"
            elif score >= t_silver:
                tier = "silver"
            else:
                tier = "none"
            service_level = service_levels[bisect(service_cum[tier], r())]

            x = r()
            lifecycle: Lifecycle
            if drift is not None:
                lifecycle = "decline" if x < 0.55 else "churn" if x < 0.7 else "maturity"
            elif years < 1.0:
                lifecycle = "acquisition" if x < 0.85 else "growth"
            elif years < 3.0:
                if x < 0.7:
                    lifecycle = "growth"
                elif x < 0.9:
                    lifecycle = "maturity"
                else:
                    lifecycle = "decline" if x < 0.97 else "churn"
            elif x < 0.8:
                lifecycle = "maturity"
            elif x < 0.9:
                lifecycle = "decline"
            else:
                lifecycle = "growth" if x < 0.97 else "churn"

            x = r()
            contract_end: date | None = None
            if x < 0.6:
                # About one contract in six runs out within the next 60 days.
                if x < 0.1:
                    contract_end = fromordinal(today_ord + 1 + int(x * 600.0))
                else:
                    contract_end = fromordinal(today_ord + 61 + int((x - 0.1) * 1340.0))

            x = r()
            if drift is not None and low_balance in drift.kinds:
                balance = Decimal(int(x * 1500)) * cent
            elif x < 0.05:
                balance = Decimal(int(x * 60_000)) * cent  # 0..30 yuan
            else:
                balance = Decimal(int((50.0 + fee * (0.3 + 2.6 * x)) * 100)) * cent

            taboo = taboo_sets[int(r() * n_taboo_sets)]
            pref = pref_sets[int(r() * n_pref_sets)]
            if taboo and pref and taboo in blocked_prefs:
                blocked = blocked_prefs[taboo]
                pref = tuple(p for p in pref if p not in blocked)

            dates: tuple[tuple[str, date], ...] = ()
            x = r()
            age_days = today_ord - birth_ord
            if x < 0.6 and age_days > 26 * year:
                wedding = birth_ord + int((22.0 + 13.0 * r()) * year)
                if wedding < today_ord:
                    dates = (("结婚纪念日", fromordinal(wedding)),)
                    child = wedding + int((1.0 + 7.0 * r()) * year)
                    if x < 0.33 and child < today_ord:
                        dates += (("孩子生日", fromordinal(child)),)
            x = r()
            if x < 0.2:
                parent = birth_ord - int((23.0 + 12.0 * r()) * year)
                dates += (("母亲生日" if x < 0.1 else "父亲生日", fromordinal(parent)),)
            elif x < 0.26 and age_days > 35 * year:
                founded = today_ord - int((1.0 + (age_days / year - 30.0) * r()) * year)
                dates += (("公司成立纪念日", fromordinal(founded)),)

            interests = interest_sets[int(r() * n_interest_sets)]
            x = r()
            # Tags follow what the archive says (family, company, age, network age, plan);
            # one draw decides the rest, its scaled fractions acting as further draws.
            y = r()
            tags: tuple[str, ...] = ()
            if y < (0.3 if fee >= 288.0 else 0.1):
                tags = (TAG_BUSINESS_TRAVEL, TAG_ROAMING) if y < 0.04 else (TAG_BUSINESS_TRAVEL,)
            if tier in ("diamond", "gold") and any(lbl == "孩子生日" for lbl, _ in dates):
                tags += (TAG_AFFLUENT_FAMILY,)
            if dates and dates[-1][0] == "公司成立纪念日":
                tags += (TAG_BUSINESS_OWNER,)
            if "融合" in plan_name or (y * 8.0) % 1.0 < 0.3:
                tags += (TAG_BROADBAND,)
            if age_days > 60 * year:
                tags += (TAG_SENIOR,)
            elif birth_ord >= young_from and plan_name[:2] == "5G" and (y * 64.0) % 1.0 < 0.3:
                tags += (TAG_5G,)
            if years >= 10.0:
                tags += (TAG_LOYAL,)
            if i >= lo:
                # A presized copy of the field template: a 22-key dict literal is much slower.
                fields = template()
                fields["msisdn"] = msisdn
                fields["name"] = name
                fields["gender"] = "female" if female else "male"
                fields["birthday"] = fromordinal(birth_ord)
                fields["region"] = region
                fields["city"] = city
                fields["time_zone"] = tz
                fields["join_date"] = fromordinal(join_ord)
                fields["plan_name"] = plan_name
                fields["plan_fee"] = plan_fee
                fields["contract_end"] = contract_end
                fields["balance"] = balance
                fields["tier"] = tier
                fields["service_level"] = service_level
                fields["lifecycle"] = lifecycle
                fields["manager_id"] = manager_id
                fields["interests"] = interests
                fields["tags"] = tags
                fields["preferences"] = pref
                fields["taboos"] = taboo
                # One draw serves both: opt-out is its bottom 3%, the hours use all of it.
                fields["sms_opt_out"] = x < 0.03
                fields["preferred_contact_hours"] = hours[int(x * n_hours)]
                fields["important_dates"] = dates
                customer = new(Customer)
                set_(customer, "__dict__", fields)
                yield customer

    # -- usage -----------------------------------------------------------------------------------

    def usage(
        self,
        days: int = 90,
        end: date | None = None,
        *,
        customers: Iterable[Customer] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[DailyUsage]:
        """Daily usage for ``days`` days ending at ``end`` (default ``today``), customer-major.

        Usage of a customer depends only on the seed, the customer and the window, so any subset
        (``start``/``stop`` or your own ``customers`` from this data set) gives the same rows
        as the full run.
        """
        if days < 1:
            raise ValueError("days must be >= 1")
        end_ord = (end or self.today).toordinal()
        day_list = [date.fromordinal(end_ord - days + 1 + k) for k in range(days)]
        weekend = [d.weekday() >= 5 for d in day_list]
        rng = random.Random(0)
        if customers is None:
            for index, customer in enumerate(self.customers(start, stop), start):
                yield from self._usage_of(customer, index, day_list, weekend, rng)
        else:
            for customer in customers:
                index = self.index_of(customer.msisdn)
                yield from self._usage_of(customer, index, day_list, weekend, rng)

    def _usage_of(
        self,
        customer: Customer,
        index: int,
        day_list: list[date],
        weekend: list[bool],
        rng: random.Random,
    ) -> Iterator[DailyUsage]:
        # Reseeding per customer (about 100 ns per row over a 60-day window) is what makes a
        # customer's usage independent of which other customers are generated with it.
        rng.seed(_splitmix(self._usage_base ^ index))
        r = rng.random
        n = len(day_list)
        fee = float(customer.plan_fee)
        plan_daily_cents = fee * 100.0 / 30.0

        # Personal baseline.
        calls_mean = 3.0 + 13.0 * r()
        weekend_calls = 0.55 + 0.35 * r()
        minutes_per_call = 1.8 + 2.7 * r()
        data_mean = 150.0 + 2600.0 * r() * r()
        weekend_data = 1.0 + 0.35 * r()
        share_base = 0.18 + 0.27 * r()
        spend_level = 1.0 + 0.35 * r()  # VIPs typically use about their plan or a bit more

        plan = self.drift_of(index)
        drifting = plan.drifting
        onset = n
        drop = below = other_net = forwarding = False
        drop_depth = below_level = share_target = 0.0
        forward_from = n
        zero_from = zero_to = n
        hotline_days: dict[int, int] = {}
        marketing_days: dict[int, int] = {}
        no_topup_from = n
        if drifting:
            kinds = plan.kinds
            onset = max(0, n - plan.onset_days)
            window = n - onset
            drop = Drift.USAGE_DROP in kinds
            drop_depth = 0.6 + 0.25 * r()
            below = Drift.SPEND_BELOW_PLAN in kinds
            below_level = 0.3 + 0.25 * r()
            other_net = Drift.OTHER_NETWORK in kinds
            share_target = 0.7 + 0.2 * r()
            forwarding = Drift.CALL_FORWARDING in kinds
            forward_from = onset + int(r() * min(7, window))
            if Drift.ZERO_CALLS in kinds:
                run = min(window, 5 + int(r() * 6))
                zero_to = n - 1 - int(r() * min(3, window - run + 1))
                zero_from = zero_to - run + 1
            if Drift.COMPETITOR_HOTLINE in kinds:
                for k in rng.sample(range(onset, n), min(window, 2 + int(r() * 3))):
                    hotline_days[k] = 1 + (r() < 0.3)
            if Drift.COMPETITOR_MARKETING in kinds:
                for k in rng.sample(range(onset, n), min(window, 3 + int(r() * 6))):
                    marketing_days[k] = 1 + (r() < 0.25)
            if Drift.LOW_BALANCE in kinds:
                no_topup_from = onset

        cents = _cents()
        n_cents = len(cents)
        msisdn = customer.msisdn
        # Rows are dicts first: balances can only be filled in once every spend is known.
        rows: list[dict[str, Any]] = []
        append = rows.append
        for k in range(n):
            wk = weekend[k]
            act = 0.7 + 0.6 * r()
            calls_f = calls_mean * (weekend_calls if wk else 1.0) * act
            data_f = data_mean * (weekend_data if wk else 1.0) * (0.6 + 0.8 * r())
            spend_f = spend_level * (0.55 + 0.35 * act)
            share = share_base + 0.12 * (r() - 0.5)
            # One draw for the rare background events: they are mutually exclusive on a day.
            x = r()
            hot = 1 if x < 0.002 else 0
            mkt = 1 if 0.002 <= x < 0.012 else 0
            zero = 0.012 <= x < 0.022
            fwd = 0
            if k >= onset:
                p = (k - onset + 1) / (n - onset)
                if drop:
                    f = 1.0 - drop_depth * min(1.0, 1.5 * p)
                    calls_f *= f
                    data_f *= f
                    spend_f *= f
                if below:
                    spend_f *= 1.0 - (1.0 - below_level) * min(1.0, 2.0 * p)
                if other_net:
                    share += (share_target - share_base) * min(1.0, 1.3 * p)
                if forwarding and k >= forward_from:
                    fwd = 2 + int(6 * r())
                if zero_from <= k <= zero_to:
                    zero = True
                if k in hotline_days:
                    hot = hotline_days[k]
                if k in marketing_days:
                    mkt = marketing_days[k]
            if zero:
                calls = minutes = 0
                share = 0.0
            else:
                calls = int(calls_f + r())
                minutes = int(calls * minutes_per_call * (0.6 + 0.8 * r()) + 0.5)
                if calls == 0 or share < 0.0:
                    share = 0.0
                elif share > 1.0:
                    share = 1.0
                else:
                    share = int(share * 1000.0 + 0.5) / 1000.0
            c = int(plan_daily_cents * spend_f)
            append(
                {
                    "msisdn": msisdn,
                    "day": day_list[k],
                    "outgoing_calls": calls,
                    "minutes": minutes,
                    "data_mb": int(data_f),
                    "spend": cents[c] if c < n_cents else _money(c),
                    "balance": None,
                    "competitor_hotline_calls": hot,
                    "forwarded_to_other_network": fwd,
                    "other_network_call_share": share,
                    "competitor_marketing_contacts": mkt,
                }
            )

        # Balances run backwards from today's balance: a day whose opening balance would exceed
        # the customer's comfort level must have been a top-up day.
        balance = customer.balance
        topup_yuan = max(100, int(fee * (1.0 + 1.5 * r()) / 50.0 + 1) * 50)
        topup = _money(topup_yuan * 100)
        cap = Decimal(int(max(topup_yuan + 20.0 + 40.0 * r(), float(balance) + fee / 6.0)))
        row = rows[n - 1]
        row["balance"] = balance
        for k in range(n - 1, 0, -1):
            balance = balance + row["spend"]
            if balance > cap and k < no_topup_from:
                balance -= topup
            row = rows[k - 1]
            row["balance"] = balance

        new, set_ = _new, _set
        for row in rows:
            obj = new(DailyUsage)
            set_(obj, "__dict__", row)
            yield obj
