"""The import's fast path for a well-formed row: the same values as :class:`ImportRow`.

A pydantic model per row was the largest cost of the import in Python (about a third of
it). :func:`lean_values` checks the common shape of a feed's row in plain Python and
returns what ``ImportRow.model_validate(record).given()`` would return, or None whenever
it cannot vouch for the row: any value outside the simple forms below (padded enums,
``1.5e1``, ``yes``, a datetime, a field it does not know), any broken rule. The model then
decides as before, so a bad row gets exactly the error it always got; only rows the model
would accept unchanged skip it. tests/profile/test_row_check.py holds the two to the same
values.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from services.kit.values import normalise_msisdn, normalise_region
from services.profile.contract import ContactChannel
from services.profile.models import CustomerStatus, Gender, Lifecycle, ServiceLevel, Tier
from services.profile.schemas import CustomerFields
from services.profile.validation import check_time_zone

# ASCII digits only: Python's int() and Decimal() also read other scripts' digits.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HOUR = re.compile(r"0|[1-9][0-9]?")

# Text fields and their longest value.
_TEXT: dict[str, int] = {
    "name": 50,
    "city": 50,
    "plan_name": 100,
    "contract_name": 100,
    "churn_reason": 200,
    "manager_id": 32,
}
_ENUMS: dict[str, frozenset[str]] = {
    name: frozenset(member.value for member in kind)
    for name, kind in (
        ("gender", Gender),
        ("status", CustomerStatus),
        ("tier", Tier),
        ("service_level", ServiceLevel),
        ("lifecycle", Lifecycle),
    )
}
# Dates, and whether they may lie after today.
_DATES: dict[str, bool] = {
    "birthday": False,
    "join_date": False,
    "churned_on": False,
    "contract_end": True,
}
# Money: the fee is 10 digits and never negative, the balance 12; two decimal places.
_MONEY: dict[str, re.Pattern[str]] = {
    "plan_fee": re.compile(r"(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?"),
    "balance": re.compile(r"-?(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?"),
}
_LABELS = frozenset({"interests", "tags", "preferences", "taboos"})
_BOOLS = frozenset({"do_not_disturb", "sms_opt_out"})
_HOURS = frozenset({"preferred_hours_start", "preferred_hours_end"})
_CHANNELS = frozenset(c.value for c in ContactChannel)
_NOT_NULL = CustomerFields.NOT_NULL


class _Unsure(Exception):
    """The fast path cannot vouch for this value: the model decides."""


def lean_values(record: dict[str, Any], today: date) -> dict[str, Any] | None:
    """The given values of a good row (``msisdn`` included), or None: ask the model."""
    try:
        values = {name: _value(name, raw, today) for name, raw in record.items()}
    except _Unsure:
        return None
    if "msisdn" not in values:
        return None
    start, end = values.get("preferred_hours_start"), values.get("preferred_hours_end")
    if start is not None and end is not None and start >= end:
        return None
    if values.get("status") == CustomerStatus.churned and not values.get("churn_reason"):
        return None
    return values


def _value(name: str, raw: Any, today: date) -> Any:
    if raw is None:
        if name in _NOT_NULL or name == "msisdn":
            raise _Unsure
        return None
    if name == "msisdn":
        return _call(normalise_msisdn, _str(raw))
    if name in _TEXT:
        return _text(raw, _TEXT[name])
    if name in _ENUMS:
        return _known(raw, _ENUMS[name])
    if name in _DATES:
        day = _date(raw)
        if day > today and not _DATES[name]:
            raise _Unsure
        return day
    if name in _MONEY:
        if type(raw) is int:
            raw = str(raw)
        if not _MONEY[name].fullmatch(_str(raw)):
            raise _Unsure
        return Decimal(raw)
    if name in _LABELS:
        if type(raw) is not list or len(raw) > 50:
            raise _Unsure
        return [_text(label, 50) for label in raw]
    if name in _BOOLS:
        if raw is True or raw == "true":
            return True
        if raw is False or raw == "false":
            return False
        raise _Unsure
    if name in _HOURS:
        if isinstance(raw, str) and _HOUR.fullmatch(raw):
            raw = int(raw)
        if type(raw) is not int or not 0 <= raw <= 24:
            raise _Unsure
        return raw
    if name == "region":
        return _call(normalise_region, _str(raw))
    if name == "time_zone":
        zone = _str(raw)
        if zone != zone.strip():
            raise _Unsure
        return _call(check_time_zone, zone)
    if name == "important_dates":
        if type(raw) is not list or len(raw) > 20:
            raise _Unsure
        return [_important_date(item) for item in raw]
    if name == "contact_channels":
        if type(raw) is not list or len(raw) > 7:
            raise _Unsure
        return [_known(c, _CHANNELS) for c in raw]
    if name == "custom":
        if type(raw) is not dict:
            raise _Unsure
        return dict(raw)
    raise _Unsure  # family_notes, sms_opt_out_at, a key the model does not know


def _str(raw: Any) -> str:
    if type(raw) is not str:
        raise _Unsure
    return raw


def _known(raw: Any, choices: frozenset[str]) -> str:
    value = _str(raw)
    if value not in choices:
        raise _Unsure
    return value


def _text(raw: Any, max_length: int) -> str:
    text = _str(raw).strip()
    if not text or len(text) > max_length:
        raise _Unsure
    return text


def _date(raw: Any) -> date:
    value = _str(raw)
    if not _DATE.fullmatch(value):
        raise _Unsure
    day: date = _call(date.fromisoformat, value)
    return day


def _important_date(item: Any) -> dict[str, str]:
    if type(item) is not dict or item.keys() != {"label", "date"}:
        raise _Unsure
    return {"label": _text(item["label"], 50), "date": _date(item["date"]).isoformat()}


def _call(check: Any, raw: str) -> Any:
    try:
        return check(raw)
    except ValueError:
        raise _Unsure from None
