"""Phone numbers a caller may not see in full: one rule for every service and the gateway.

Partner systems see numbers masked (138****1234) unless their id is listed in
``KEEPWELL_PARTNERS_UNMASKED``; staff roles see them in full. Whatever reaches a partner
(an API answer, a webhook payload, a delivery log) goes through this module.
"""

from __future__ import annotations

import re
from typing import Any

from services.kit.auth import Principal, Role
from services.kit.config import Settings, get_settings

_MOBILE = re.compile(r"1[3-9]\d{9}")


def mask_msisdn(msisdn: str) -> str:
    return f"{msisdn[:3]}****{msisdn[-4:]}"


def partner_sees_numbers(partner_id: str, settings: Settings | None = None) -> bool:
    return partner_id in (settings or get_settings()).partners_unmasked


def sees_numbers(principal: Principal, settings: Settings | None = None) -> bool:
    return principal.role is not Role.partner or partner_sees_numbers(principal.user_id, settings)


def mask_numbers(value: Any) -> Any:
    """``value`` (JSON-like) with every string that is a mobile number masked, however deep:
    an event payload carries numbers in snapshots, contacts and ids."""
    if isinstance(value, str):
        return mask_msisdn(value) if _MOBILE.fullmatch(value) else value
    if isinstance(value, dict):
        return {k: mask_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_numbers(v) for v in value]
    return value
