"""One customer as profile's events carry it, for tests of the services that keep a copy."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.profile.contract import CustomerSnapshot


def customer_snapshot(msisdn: str, **overrides: Any) -> CustomerSnapshot:
    values: dict[str, Any] = {
        "msisdn": msisdn,
        "version": 1,
        "name": "张伟",
        "gender": "male",
        "birthday": date(1980, 5, 20),
        "region": "广东",
        "city": "深圳",
        "time_zone": "Asia/Shanghai",
        "join_date": date(2015, 3, 1),
        "status": "active",
        "tier": "gold",
        "service_level": "B",
        "lifecycle": "maturity",
        "manager_id": "m1",
        "manager_name": "李经理",
        "team_id": "t1",
        "plan_name": "全球通199",
        "plan_fee": "199.00",
        "contract_end": None,
        "balance": "88.00",
        "sms_opt_out": False,
        "do_not_disturb": False,
        "preferred_hours_start": 9,
        "preferred_hours_end": 21,
        "taboos": [],
        "important_dates": [],
        "custom": {},
    }
    values.update(overrides)
    return CustomerSnapshot(**values)
