from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType, carrier

from keepwell.demo import (
    Customer,
    DailyUsage,
    DemoData,
    Drift,
    drift_of,
    generate,
)

TODAY = date(2025, 6, 30)
DAYS = 60


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(20_000, seed=7, today=TODAY)


@pytest.fixture(scope="module")
def customers(data: DemoData) -> list[Customer]:
    return list(data.customers())


def _years_between(earlier: date, later: date) -> int:
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


# -- phone numbers ---------------------------------------------------------------------------------

CARRIER_PREFIXES = {
    "中国移动": set(
        [
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
    ),
    "中国联通": set(["130", "131", "132", "155", "156", "166", "175", "176", "185", "186"]),
    "中国电信": set(["133", "153", "173", "177", "180", "181", "189", "199"]),
}


def test_numbers_are_valid_chinese_mobiles_of_the_right_carrier(customers: list[Customer]) -> None:
    seen_carriers: Counter[str] = Counter()
    for c in customers[::10]:
        assert len(c.msisdn) == 11 and c.msisdn.isdigit()
        parsed = phonenumbers.parse(c.msisdn, "CN")
        assert phonenumbers.is_valid_number(parsed), c.msisdn
        assert phonenumbers.number_type(parsed) == PhoneNumberType.MOBILE
        name = carrier.name_for_number(parsed, "zh")
        assert c.msisdn[:3] in CARRIER_PREFIXES[name]
        seen_carriers[name] += 1
    # China Mobile is the biggest operator; all three appear.
    assert seen_carriers.most_common(1)[0][0] == "中国移动"
    assert len(seen_carriers) == 3


def test_numbers_unique_over_50k_and_invertible() -> None:
    data = generate(50_000, seed=3, today=TODAY)
    numbers = [data.msisdn_of(i) for i in range(50_000)]
    assert len(set(numbers)) == 50_000
    for i in range(0, 50_000, 997):
        assert data.index_of(numbers[i]) == i
    with pytest.raises(ValueError):
        data.index_of("12345")


def test_customer_numbers_match_msisdn_of(data: DemoData, customers: list[Customer]) -> None:
    assert len({c.msisdn for c in customers}) == len(customers)
    for i in range(0, len(customers), 501):
        assert customers[i].msisdn == data.msisdn_of(i)


def test_staff_phones_valid_and_never_a_customer_number(
    data: DemoData, customers: list[Customer]
) -> None:
    phones = {m.phone for m in data.managers}
    assert len(phones) == len(data.managers)
    for phone in phones:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone, "CN"))
    assert phones.isdisjoint(c.msisdn for c in customers)


# -- determinism and slicing -----------------------------------------------------------------------


def test_same_seed_same_output_other_seed_other_output() -> None:
    a = generate(3000, seed=11, today=TODAY)
    b = generate(3000, seed=11, today=TODAY)
    assert a.teams == b.teams and a.managers == b.managers
    assert list(a.customers()) == list(b.customers())
    assert list(a.usage(days=14, stop=50)) == list(b.usage(days=14, stop=50))
    c = generate(3000, seed=12, today=TODAY)
    assert [x.msisdn for x in c.customers(0, 100)] != [x.msisdn for x in a.customers(0, 100)]
    assert [x.name for x in c.customers(0, 100)] != [x.name for x in a.customers(0, 100)]


def test_slices_and_random_access_match_the_full_stream(
    data: DemoData, customers: list[Customer]
) -> None:
    assert list(data.customers(1000, 2100)) == customers[1000:2100]
    assert data.customer(5000) == customers[5000]
    assert list(data.customers(19_990, 10**9)) == customers[19_990:]
    with pytest.raises(IndexError):
        data.customer(20_000)
    # Usage of one customer does not depend on which others are generated with it.
    alone = list(data.usage(days=30, customers=[customers[1234]]))
    in_range = [
        u for u in data.usage(days=30, start=1230, stop=1240) if u.msisdn == customers[1234].msisdn
    ]
    assert alone == in_range and len(alone) == 30


def test_records_are_frozen(customers: list[Customer]) -> None:
    with pytest.raises(AttributeError):
        customers[0].name = "x"  # type: ignore[misc]
    assert hash(customers[0]) == hash(customers[0])


# -- people ----------------------------------------------------------------------------------------

MASCULINE = set("伟强军刚勇杰鹏龙斌磊涛建国")
FEMININE = set("芳娟丽秀娜婷霞燕梅兰凤琴颖怡")


def test_names_and_honorifics_follow_gender(customers: list[Customer]) -> None:
    genders = Counter(c.gender for c in customers)
    assert 0.42 < genders["female"] / len(customers) < 0.54
    for c in customers:
        given = c.name[len(c.surname) :]
        assert len(given) in (1, 2) and len(c.name) in (2, 3, 4)
        if c.gender == "female":
            assert c.honorific == c.surname + "女士"
            assert not MASCULINE & set(given), c.name
        else:
            assert c.honorific == c.surname + "先生"
            assert not FEMININE & set(given), c.name
    surnames = Counter(c.surname for c in customers)
    assert {s for s, _ in surnames.most_common(5)} <= set("王李张刘陈杨")
    assert len(surnames) > 60


def test_ages_network_age_and_dates(customers: list[Customer]) -> None:
    for c in customers:
        age = _years_between(c.birthday, TODAY)
        assert 22 <= age <= 75
        assert c.join_date <= TODAY
        assert _years_between(c.join_date, TODAY) <= 20
        assert _years_between(c.birthday, c.join_date) >= 16
        for label, when in c.important_dates:
            assert label in {"结婚纪念日", "孩子生日", "父亲生日", "母亲生日", "公司成立纪念日"}
            assert when < TODAY
            if label == "孩子生日":
                assert when > c.birthday
    assert min(_years_between(c.birthday, TODAY) for c in customers) == 22
    assert max(_years_between(c.birthday, TODAY) for c in customers) == 75
    married = sum(any(lbl == "结婚纪念日" for lbl, _ in c.important_dates) for c in customers)
    assert 0.35 < married / len(customers) < 0.65


def test_tags_are_chinese_small_and_consistent(customers: list[Customer]) -> None:
    for c in customers[:5000]:
        assert len(c.interests) in (1, 2, 3) and len(set(c.interests)) == len(c.interests)
        assert len(c.taboos) <= 2 and len(c.preferences) <= 2
        if "不喜欢电话打扰" in c.taboos:
            assert "偏好电话沟通" not in c.preferences
        start, end = c.preferred_contact_hours
        assert 8 <= start < end <= 22
        for tag in (*c.interests, *c.taboos, *c.preferences):
            assert any("\u4e00" <= ch <= "\u9fff" for ch in tag)
    all_taboos = Counter(t for c in customers for t in c.taboos)
    assert "忌讳数字4" in all_taboos and "不喜欢电话打扰" in all_taboos
    opted_out = sum(c.sms_opt_out for c in customers) / len(customers)
    assert 0.015 < opted_out < 0.05


def test_operator_tags_follow_the_archive_and_each_has_an_audience(
    customers: list[Customer],
) -> None:
    shares = Counter(t for c in customers for t in c.tags)
    # Every label is common enough for a campaign chosen by it to reach someone.
    assert set(shares) == {
        "商旅客户", "国际漫游", "高端家庭", "企业主",
        "融合宽带", "银发客户", "十年老客户", "5G尝鲜",
    }  # fmt: skip
    assert all(n / len(customers) > 0.02 for n in shares.values()), shares
    for c in customers[:5000]:
        assert len(set(c.tags)) == len(c.tags)
        labels = {label for label, _ in c.important_dates}
        if "高端家庭" in c.tags:
            assert c.tier in ("diamond", "gold") and "孩子生日" in labels
        assert ("企业主" in c.tags) == ("公司成立纪念日" in labels)
        age = _years_between(c.birthday, TODAY)
        assert age >= 60 if "银发客户" in c.tags else age <= 60
        if "国际漫游" in c.tags:
            assert "商旅客户" in c.tags
        if "5G尝鲜" in c.tags:
            assert c.plan_name.startswith("5G")
    assert 0.5 < sum(bool(c.tags) for c in customers) / len(customers) < 0.95


# -- business proportions --------------------------------------------------------------------------


def test_tier_service_level_and_plan_are_correlated(customers: list[Customer]) -> None:
    n = len(customers)
    tiers = Counter(c.tier for c in customers)
    assert 0.02 < tiers["diamond"] / n < 0.12
    assert 0.1 < tiers["gold"] / n < 0.3
    assert 0.2 < tiers["silver"] / n < 0.45
    assert 0.25 < tiers["none"] / n < 0.55
    fee = {t: statistics.mean(float(c.plan_fee) for c in customers if c.tier == t) for t in tiers}
    assert fee["diamond"] > fee["gold"] > fee["silver"] > fee["none"]
    level_a = {
        t: sum(c.service_level == "A" for c in customers if c.tier == t) / tiers[t] for t in tiers
    }
    assert level_a["diamond"] > 0.7 and level_a["none"] < 0.05
    for c in customers:
        assert c.plan_fee == c.plan_fee.quantize(Decimal("0.01")) and c.plan_fee > 0
        assert c.plan_name.endswith(f"{int(c.plan_fee)}元")
        assert c.balance >= 0 and c.balance == c.balance.quantize(Decimal("0.01"))
    assert Counter(c.lifecycle for c in customers).keys() == {
        "acquisition",
        "growth",
        "maturity",
        "decline",
        "churn",
    }


def test_contracts_and_balances(customers: list[Customer]) -> None:
    n = len(customers)
    ends = [c.contract_end for c in customers if c.contract_end is not None]
    assert 0.55 < len(ends) / n < 0.65
    ending_soon = [end for end in ends if end <= TODAY + timedelta(days=60)]
    assert 0.05 < len(ending_soon) / n < 0.15
    assert all(end > TODAY for end in ends)
    low = sum(c.balance < 20 for c in customers) / n
    assert 0.02 < low < 0.15


def test_regions_teams_and_managers(data: DemoData, customers: list[Customer]) -> None:
    assert abs(len(data.managers) - 20_000 / 150) <= 1
    assert [m.id for m in data.managers[:2]] == ["M0001", "M0002"]
    assert data.teams[0].id == "T001"
    teams = {t.id: t for t in data.teams}
    managers = {m.id: m for m in data.managers}
    assert all(m.team_id in teams for m in data.managers)
    assert all("VIP维系" in t.name and t.name.endswith("组") for t in data.teams)
    assert any(t.name == "广州天河VIP维系一组" for t in data.teams)
    per_manager = Counter(c.manager_id for c in customers)
    assert set(per_manager) == set(managers)
    assert 100 < statistics.mean(per_manager.values()) < 200
    cities_by_region: defaultdict[str, set[str]] = defaultdict(set)
    for c in customers:
        assert teams[managers[c.manager_id].team_id].region == c.region
        assert teams[managers[c.manager_id].team_id].name.startswith(c.city)
        assert c.time_zone == ("Asia/Urumqi" if c.region == "新疆" else "Asia/Shanghai")
        cities_by_region[c.region].add(c.city)
    assert len(cities_by_region) >= 12
    assert len(cities_by_region["广东"]) >= 3
    assert "新疆" in cities_by_region


def test_a_million_customers_spread_over_many_teams_and_cities() -> None:
    big = generate(1_000_000, seed=7, today=TODAY)  # staff only; customers stream lazily
    assert len(big.managers) == 6667
    assert len({m.id for m in big.managers}) == 6667
    names = [t.name for t in big.teams]
    assert len(set(names)) == len(names)
    for city in ("广州", "深圳", "佛山", "东莞", "乌鲁木齐", "克拉玛依"):
        assert any(n.startswith(city) for n in names), city
    assert "广州天河VIP维系十二组" in names


def test_tiny_data_set_still_has_two_managers() -> None:
    data = generate(5, seed=1, today=TODAY)
    assert len(data.managers) == 2 and len(data.teams) >= 1
    assert len(list(data.customers())) == 5
    assert list(generate(0, today=TODAY).customers()) == []


# -- usage -----------------------------------------------------------------------------------------


def _by_customer(rows: list[DailyUsage]) -> dict[str, list[DailyUsage]]:
    grouped: dict[str, list[DailyUsage]] = defaultdict(list)
    for row in rows:
        grouped[row.msisdn].append(row)
    return grouped


@pytest.fixture(scope="module")
def drifting_usage(
    data: DemoData, customers: list[Customer]
) -> tuple[dict[str, Drift], dict[str, list[DailyUsage]]]:
    drifters = list(data.drifting(0, 8000))[:400]
    kinds = {msisdn: plan.kinds for _, msisdn, plan in drifters}
    chosen = [customers[i] for i, _, _ in drifters]
    return kinds, _by_customer(list(data.usage(days=DAYS, customers=chosen)))


@pytest.fixture(scope="module")
def normal_usage(data: DemoData) -> dict[str, list[DailyUsage]]:
    rows = list(data.usage(days=DAYS, stop=300))
    steady = {data.msisdn_of(i) for i in range(300) if not data.drift_of(i).drifting}
    return {m: r for m, r in _by_customer(rows).items() if m in steady}


def test_usage_rows_are_sane(normal_usage: dict[str, list[DailyUsage]]) -> None:
    for rows in normal_usage.values():
        assert [r.day for r in rows] == [TODAY - timedelta(days=DAYS - 1 - k) for k in range(DAYS)]
        for r in rows:
            assert r.outgoing_calls >= 0 and r.minutes >= r.outgoing_calls * 0.5
            assert r.data_mb >= 0 and r.spend >= 0 and r.balance >= 0
            assert 0.0 <= r.other_network_call_share <= 1.0
            assert r.spend == r.spend.quantize(Decimal("0.01"))
            assert r.forwarded_to_other_network == 0


def test_balance_ends_at_customer_balance_and_moves_by_spend(data: DemoData) -> None:
    customers = list(data.customers(0, 200))
    grouped = _by_customer(list(data.usage(days=DAYS, stop=200)))
    for c in customers:
        rows = grouped[c.msisdn]
        assert rows[-1].balance == c.balance
        for prev, row in itertools.pairwise(rows):
            change = row.balance - prev.balance
            # Either the day's spend came off, or a top-up came in on top of it.
            assert change == -row.spend or change > 0


def test_weekends_differ_from_weekdays(normal_usage: dict[str, list[DailyUsage]]) -> None:
    rows = [r for rs in normal_usage.values() for r in rs]
    weekday = statistics.mean(r.outgoing_calls for r in rows if r.day.weekday() < 5)
    weekend = statistics.mean(r.outgoing_calls for r in rows if r.day.weekday() >= 5)
    assert weekend < weekday * 0.9


def test_drift_share_and_drift_of(data: DemoData) -> None:
    drifting = list(data.drifting(0, 20_000))
    assert 0.06 < len(drifting) / 20_000 < 0.10
    for index, msisdn, plan in drifting[:50]:
        assert plan.drifting and 14 <= plan.onset_days <= 28
        assert drift_of(index, seed=7) == plan == data.drift_of(index)
        assert data.msisdn_of(index) == msisdn
    kinds = Counter(k for _, _, plan in drifting for k in Drift if k in plan.kinds)
    assert set(kinds) == set(Drift) - {Drift.NONE}
    assert any(len([k for k in Drift if k in p.kinds]) > 1 for _, _, p in drifting)
    assert not generate(1000, today=TODAY, drift_share=0.0).drift_of(5).drifting


def _baseline(rows: list[DailyUsage]) -> list[DailyUsage]:
    return rows[: DAYS - 28]


def _recent(rows: list[DailyUsage]) -> list[DailyUsage]:
    return rows[-10:]


def _mean(rows: list[DailyUsage], field: Callable[[DailyUsage], float]) -> float:
    return statistics.mean(field(r) for r in rows)


def _longest_zero_run(rows: list[DailyUsage]) -> int:
    best = run = 0
    for r in rows:
        run = run + 1 if r.outgoing_calls == 0 else 0
        best = max(best, run)
    return best


SIGNALS: dict[Drift, Callable[[list[DailyUsage]], bool]] = {
    Drift.USAGE_DROP: lambda rows: (
        _mean(_recent(rows), lambda r: r.data_mb)
        < 0.6 * _mean(_baseline(rows), lambda r: r.data_mb)
        and _mean(_recent(rows), lambda r: float(r.spend))
        < 0.6 * _mean(_baseline(rows), lambda r: float(r.spend))
    ),
    Drift.ZERO_CALLS: lambda rows: _longest_zero_run(rows[-28:]) >= 5,
    Drift.COMPETITOR_HOTLINE: lambda rows: sum(r.competitor_hotline_calls for r in rows[-28:]) >= 2,
    Drift.CALL_FORWARDING: lambda rows: (
        sum(r.forwarded_to_other_network > 0 for r in rows[-28:]) >= 5
    ),
    Drift.OTHER_NETWORK: lambda rows: (
        max((r.other_network_call_share for r in _recent(rows)), default=0.0) > 0.6
        and _mean(_baseline(rows), lambda r: r.other_network_call_share) < 0.5
    ),
    Drift.COMPETITOR_MARKETING: lambda rows: (
        sum(r.competitor_marketing_contacts for r in rows[-28:]) >= 3
    ),
    Drift.SPEND_BELOW_PLAN: lambda rows: (
        _mean(_recent(rows), lambda r: float(r.spend))
        < 0.7 * _mean(_baseline(rows), lambda r: float(r.spend))
    ),
    Drift.LOW_BALANCE: lambda rows: (
        rows[-1].balance < 20 and min(r.balance for r in _baseline(rows)) > 20
    ),
}


def test_drifting_customers_show_their_drift_at_the_end(
    drifting_usage: tuple[dict[str, Drift], dict[str, list[DailyUsage]]],
) -> None:
    kinds, grouped = drifting_usage
    checked: Counter[Drift] = Counter()
    for msisdn, rows in grouped.items():
        for kind, shows in SIGNALS.items():
            if kind in kinds[msisdn]:
                assert shows(rows), (kind, msisdn)
                checked[kind] += 1
    assert all(checked[k] >= 10 for k in SIGNALS), checked


def test_steady_customers_rarely_look_like_leavers(
    normal_usage: dict[str, list[DailyUsage]],
) -> None:
    false_alarms: Counter[Drift] = Counter()
    for rows in normal_usage.values():
        for kind, shows in SIGNALS.items():
            if kind is not Drift.LOW_BALANCE and shows(rows):
                false_alarms[kind] += 1
    assert len(normal_usage) > 250
    for kind, count in false_alarms.items():
        assert count / len(normal_usage) < 0.03, (kind, count)
