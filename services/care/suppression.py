"""Send-time rules: whether one recipient gets the message now, later, or never (and why).

Pure functions over what the dispatcher loaded for a batch, so every rule is evaluated
against the customer's current read model at the moment of sending, not at approval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.care.config import CareSettings
from services.care.models import Campaign, Category
from services.care.optout import with_hint
from services.care.providers.base import CN_MOBILE_PATTERN
from services.care.rendering import MissingValues, render

_MOBILE = re.compile(CN_MOBILE_PATTERN)
DEFAULT_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Policy:
    quiet_start_hour: int
    quiet_end_hour: int
    frequency_cap: int
    cap_exempt: bool
    honours_do_not_disturb: bool = True
    """Do-not-disturb turns away care and marketing, not a weather or safety alert for the
    customer's own region; an SMS opt-out turns away everything."""
    honours_quiet_hours: bool = True
    """False only for an alert posted as urgent."""
    opt_out_hint: str | None = None
    """Appended to the text unless it already says how to refuse more (commercial
    categories only; a notification carries none)."""
    keywords: frozenset[str] = frozenset()
    """The replies that opt out: a template's own hint counts only if it names one."""


@dataclass(frozen=True)
class Send:
    text: str


@dataclass(frozen=True)
class Suppress:
    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str = "quiet_hours"


Decision = Send | Suppress | Hold


def policy_for(campaign: Campaign, care: CareSettings) -> Policy:
    alert = campaign.category == Category.alert
    return Policy(
        quiet_start_hour=care.quiet_start_hour,
        quiet_end_hour=care.quiet_end_hour,
        frequency_cap=care.frequency_cap,
        cap_exempt=str(campaign.category) in care.cap_exempt_categories,
        honours_do_not_disturb=not alert,
        honours_quiet_hours=not (alert and campaign.urgent),
        opt_out_hint=(
            care.opt_out_hint if str(campaign.category) in care.opt_out_hint_categories else None
        ),
        keywords=care.keywords,
    )


def message_text(template: str, customer: Mapping[str, Any], policy: Policy) -> str:
    """What the customer's handset shows: the rendered template and, where the category
    needs one, the opt-out hint. Raises MissingValues like ``render``."""
    text = render(template, customer)
    if policy.opt_out_hint is not None:
        text = with_hint(text, policy.opt_out_hint, policy.keywords)
    return text


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def quiet_until(now: datetime, zone: ZoneInfo, start_hour: int, end_hour: int) -> datetime | None:
    """The end of the quiet window ``now`` falls in (in ``zone``), or None if outside it."""
    if start_hour == end_hour:
        return None
    local = now.astimezone(zone)
    hour = local.hour
    inside = (
        (hour >= start_hour or hour < end_hour)
        if start_hour > end_hour
        else start_hour <= hour < end_hour
    )
    if not inside:
        return None
    day = local.date() if hour < end_hour else local.date() + timedelta(days=1)
    return datetime.combine(day, time(end_hour), tzinfo=zone)


def decide(
    *,
    msisdn: str,
    customer: Mapping[str, Any] | None,
    template: str,
    taboo_tags: list[str],
    policy: Policy,
    now: datetime,
    sent_in_window: int,
) -> Decision:
    if customer is None:
        return Suppress("unknown_customer")
    if not _MOBILE.match(msisdn):
        return Suppress("invalid_number")
    if customer["status"] == "churned":
        return Suppress("churned")
    if customer["sms_opt_out"]:
        return Suppress("opt_out")
    if customer["do_not_disturb"] and policy.honours_do_not_disturb:
        return Suppress("do_not_disturb")
    clash = sorted(set(taboo_tags) & set(customer["taboos"] or []))
    if clash:
        return Suppress("taboo", ", ".join(clash))
    try:
        text = message_text(template, customer, policy)
    except MissingValues as exc:
        return Suppress("render_error", f"missing: {exc}")
    until = quiet_until(
        now, zone_of(customer["time_zone"]), policy.quiet_start_hour, policy.quiet_end_hour
    )
    if until is not None and policy.honours_quiet_hours:
        return Hold(until)
    if not policy.cap_exempt and sent_in_window >= policy.frequency_cap:
        return Suppress("frequency_cap", f"{sent_in_window} in window")
    return Send(text)
