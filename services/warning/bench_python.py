"""The detection rules evaluated the straightforward way: one subscriber at a time, in
Python, over rows fetched per subscriber. Only the benchmark uses it, as the yardstick for
the set-based query (speed) and as an independent check of its results (agreement)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.warning import service
from services.warning.models import Signal
from services.warning.rules import Thresholds


@dataclass
class SampleResult:
    seconds: float
    hits: dict[str, set[str]] = field(default_factory=dict)


def _avg(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def evaluate(rows: list[Any], customer: Any | None, day: date, t: Thresholds) -> set[str]:
    """Which signals fire for one subscriber; deliberately plain, one rule after another."""
    tier = customer.tier if customer else None
    if customer is not None and customer.status == "churned":
        return set()
    hits: set[str] = set()

    def rule(signal: Signal) -> Any:
        return t.rule(signal, tier)

    def p(signal: Signal) -> dict[str, Any]:
        params: dict[str, Any] = rule(signal).params
        return params

    def within(n: int) -> list[Any]:
        return [r for r in rows if r.day > day - timedelta(days=n)]

    r = p(Signal.contract_expiry)
    end = customer.contract_end if customer else None
    soon = end is not None and day <= end <= day + timedelta(days=r["days_before"])
    if rule(Signal.contract_expiry).enabled and soon:
        hits.add("contract_expiry")
    if not rows:
        return hits

    r = p(Signal.usage_drop)
    recent = within(r["recent_days"])
    base = [r2 for r2 in within(r["recent_days"] + r["baseline_days"]) if r2 not in recent]
    if rule(Signal.usage_drop).enabled and (
        len(recent) >= r["min_recent_days"] and len(base) >= r["min_baseline_days"]
    ):
        for attr, minimum in (
            ("minutes", r["min_baseline_minutes"]),
            ("outgoing_calls", r["min_baseline_calls"]),
            ("data_mb", r["min_baseline_data_mb"]),
            ("spend", r["min_baseline_spend"]),
        ):
            b = _avg([float(getattr(x, attr)) for x in base]) or 0.0
            a = _avg([float(getattr(x, attr)) for x in recent]) or 0.0
            if b >= minimum and round(100 * (1 - a / b)) >= r["drop_pct"]:
                hits.add("usage_drop")

    r = p(Signal.zero_calls)
    if rule(Signal.zero_calls).enabled and sum(x.outgoing_calls for x in rows) > 0:
        run, best, previous = 0, 0, None
        for x in within(r["within_days"]):
            if x.outgoing_calls == 0:
                run = run + 1 if previous is not None and x.day - previous == timedelta(1) else 1
                previous = x.day
                best = max(best, run)
            else:
                # A call ends the silence: only a run no call followed counts.
                run, previous, best = 0, None, 0
        if best >= r["days"]:
            hits.add("zero_calls")

    r = p(Signal.competitor_hotline)
    calls = sum(x.competitor_hotline_calls for x in within(r["within_days"]))
    if rule(Signal.competitor_hotline).enabled and calls >= r["min_calls"]:
        hits.add("competitor_hotline")

    r = p(Signal.competitor_marketing)
    contacts = sum(x.competitor_marketing_contacts or 0 for x in within(r["within_days"]))
    recent = [x for x in within(r["recent_days"]) if x.outgoing_calls > 0]
    base = [
        x
        for x in within(r["recent_days"] + r["baseline_days"])
        if x.outgoing_calls > 0 and x.day <= day - timedelta(days=r["recent_days"])
    ]
    share_r = _avg([x.other_network_call_share for x in recent])
    share_b = _avg([x.other_network_call_share for x in base])
    by_share = (
        share_r is not None
        and share_b is not None
        and 100 * share_r >= r["share_pct"]
        and 100 * (share_r - share_b) >= r["share_rise_pct"]
    )
    if rule(Signal.competitor_marketing).enabled and (contacts >= r["min_contacts"] or by_share):
        hits.add("competitor_marketing")

    r = p(Signal.call_forwarding)
    forwarded = sum(x.forwarded_to_other_network for x in within(r["within_days"]))
    if rule(Signal.call_forwarding).enabled and forwarded >= r["min_calls"]:
        hits.add("call_forwarding")

    r = p(Signal.spend_below_plan)
    period = within(r["period_days"])
    if rule(Signal.spend_below_plan).enabled and customer and customer.plan_fee > 0:
        spend = sum(x.spend for x in period)
        if len(period) >= r["min_days"] and 100 * spend < r["below_pct"] * customer.plan_fee:
            hits.add("spend_below_plan")

    r = p(Signal.low_balance)
    last = [x for x in rows if x.day == day]
    if rule(Signal.low_balance).enabled and last and last[0].balance < r["max_balance"]:
        hits.add("low_balance")
    return hits


async def evaluate_sample(session: AsyncSession, msisdns: list[str], day: date) -> SampleResult:
    current = await service.current_rules(session)
    thresholds = Thresholds(service.rules_of(current))
    start = day - timedelta(days=60)
    result = SampleResult(seconds=0.0)
    started = time.perf_counter()
    for msisdn in msisdns:
        customer = (
            await session.execute(
                text("SELECT * FROM warning.customer WHERE msisdn = :m"), {"m": msisdn}
            )
        ).first()
        rows = list(
            await session.execute(
                text(
                    "SELECT * FROM warning.daily_usage WHERE msisdn = :m "
                    "AND day BETWEEN :start AND :day ORDER BY day"
                ),
                {"m": msisdn, "start": start, "day": day},
            )
        )
        hits = evaluate(rows, customer, day, thresholds)
        if hits:
            result.hits[msisdn] = hits
    result.seconds = time.perf_counter() - started
    return result
