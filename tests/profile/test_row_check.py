"""The import's fast path vouches only for rows the model accepts, with the model's values."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from keepwell.bench.import_customers import _write_csv
from keepwell.demo import generate
from services.kit import clock
from services.profile.importer import _csv_records
from services.profile.row_check import lean_values
from services.profile.schemas import ImportRow

GOOD: dict[str, Any] = {
    "msisdn": "+86 138-0000-0001",
    "name": " 王建国 ",
    "gender": "male",
    "birthday": "1980-02-29",
    "region": "广东省",
    "city": "广州",
    "time_zone": "Asia/Shanghai",
    "join_date": "2012-03-01",
    "plan_name": "全球通199",
    "plan_fee": "199.00",
    "contract_name": None,
    "contract_end": "2099-01-01",
    "balance": "-12.5",
    "status": "active",
    "tier": "gold",
    "service_level": "A",
    "lifecycle": "maturity",
    "manager_id": "M1",
    "interests": ["围棋", " 红酒 "],
    "tags": [],
    "preferences": [],
    "taboos": ["忌讳数字4"],
    "important_dates": [{"label": "生日", "date": "1980-02-29"}],
    "contact_channels": ["call", "sms"],
    "do_not_disturb": False,
    "sms_opt_out": "true",
    "preferred_hours_start": "9",
    "preferred_hours_end": 21,
    "custom": {"vip_card_no": "A1"},
}

# One field changed from GOOD each: values at the edge of what either path takes.
EDGES: list[tuple[str, Any]] = [
    ("msisdn", "12345"), ("msisdn", "13800000001 "), ("msisdn", 13800000001), ("msisdn", None),
    ("name", ""), ("name", "   "), ("name", "王" * 50), ("name", "王" * 51), ("name", None),
    ("name", 5), ("gender", " male"), ("gender", "Male"), ("gender", "other"), ("gender", None),
    ("gender", ["male"]), ("birthday", "2099-01-01"), ("birthday", "20200101"),
    ("birthday", "2020-1-1"), ("birthday", "2020-02-30"), ("birthday", "２０２０-01-01"),
    ("birthday", "2020-01-01T00:00:00"), ("birthday", 0), ("birthday", None),
    ("region", "火星"), ("region", " 新疆维吾尔自治区 "), ("region", None), ("city", "c" * 51),
    ("time_zone", "Mars/Base"), ("time_zone", " Asia/Urumqi"), ("time_zone", "UTC"),
    ("join_date", None), ("join_date", "2099-12-31"), ("contract_end", None),
    ("plan_fee", "1.555"), ("plan_fee", "-1"), ("plan_fee", "01.5"), ("plan_fee", "1.5e1"),
    ("plan_fee", " 1.5"), ("plan_fee", "12345678.99"), ("plan_fee", "123456789"),
    ("plan_fee", "١٢"), ("plan_fee", 12), ("plan_fee", 12.5), ("plan_fee", True),
    ("plan_fee", None), ("balance", "-0"), ("balance", "9999999999.99"),
    ("balance", "99999999999"), ("status", "churned"), ("status", "dormant"),
    ("tier", "platinum"), ("service_level", "a"), ("lifecycle", "churn"),
    ("manager_id", "M" * 33), ("manager_id", None), ("manager_id", " "),
    ("interests", ["x"] * 51), ("interests", [""]), ("interests", ["l" * 51]),
    ("interests", "围棋"), ("interests", None), ("interests", [1]), ("taboos", [" a ", "b"]),
    ("important_dates", [{"label": "x", "date": "2020-02-30"}]),
    ("important_dates", [{"label": "x"}]),
    ("important_dates", [{"label": "", "date": "2020-01-01"}]),
    ("important_dates", [{"label": "x", "date": "2020-01-01", "extra": 1}]),
    ("important_dates", [{"label": "x", "date": "2020-01-01"}] * 21),
    ("important_dates", [{"label": "x", "date": "2099-01-01"}]), ("important_dates", None),
    ("contact_channels", ["fax"]), ("contact_channels", ["call"] * 8),
    ("contact_channels", [["call"]]),
    ("do_not_disturb", "yes"), ("do_not_disturb", "True"), ("do_not_disturb", 1),
    ("do_not_disturb", None), ("sms_opt_out", "false"), ("sms_opt_out", True),
    ("preferred_hours_start", "09"), ("preferred_hours_start", "+9"),
    ("preferred_hours_start", "25"), ("preferred_hours_start", "21"),
    ("preferred_hours_start", "٣"), ("preferred_hours_start", True),
    ("preferred_hours_start", 9.0), ("preferred_hours_end", 24), ("preferred_hours_end", -1),
    ("custom", None), ("custom", []), ("custom", {}), ("family_notes", "爱喝茶"),
    ("sms_opt_out_at", "2020-01-01T00:00:00+08:00"), ("unknown_field", "x"),
]  # fmt: skip


def _by_model(record: dict[str, Any]) -> dict[str, Any] | None:
    try:
        row = ImportRow.model_validate(record)
    except ValidationError:
        return None
    return None if row.rule_broken() is not None else row.given()


def _assert_agrees(record: dict[str, Any]) -> None:
    lean = lean_values(record, clock.today())
    if lean is not None:
        model = _by_model(record)
        assert model is not None, f"the fast path took a row the model refuses: {record}"
        assert lean == model
        assert {k: type(v) for k, v in lean.items()} == {
            k: str if isinstance(v, str) else type(v) for k, v in model.items()
        }


def test_a_good_row_takes_the_fast_path_with_the_models_values() -> None:
    assert lean_values(GOOD, clock.today()) is not None
    _assert_agrees(GOOD)


@pytest.mark.parametrize(("field", "value"), EDGES)
def test_an_edge_value_gets_the_models_answer(field: str, value: Any) -> None:
    _assert_agrees({**GOOD, field: value})


def test_a_churned_row_without_a_reason_and_hours_out_of_order_go_to_the_model() -> None:
    assert lean_values({**GOOD, "status": "churned"}, clock.today()) is None
    assert lean_values({**GOOD, "status": "churned", "churn_reason": "携号转网"}, clock.today())
    assert lean_values({**GOOD, "preferred_hours_start": "21"}, clock.today()) is None
    assert lean_values({k: v for k, v in GOOD.items() if k != "msisdn"}, clock.today()) is None


def test_a_day_after_the_import_date_goes_to_the_model() -> None:
    assert lean_values({**GOOD, "join_date": "2020-01-02"}, date(2020, 1, 1)) is None


def test_every_generated_customer_takes_the_fast_path(tmp_path) -> None:
    path = tmp_path / "customers.csv"
    _write_csv(path, generate(customers=300, seed=3).customers())
    records = list(_csv_records(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert len(records) == 300
    for _, record in records:
        assert isinstance(record, dict)
        assert lean_values(record, clock.today()) is not None
        _assert_agrees(record)
