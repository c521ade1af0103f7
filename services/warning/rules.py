"""The detection rule set: per-signal thresholds and weights, optionally per tier.

A rule set is versioned: editing one rule stores a whole new version, so every warning can
name the exact thresholds that fired it. The defaults below are the first version; they
were calibrated on the demo generator (``keepwell bench detect`` prints recall per drift
kind and the share of steady customers flagged).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.kit.errors import chinese_message
from services.profile.contract import Tier
from services.warning.exceptions import InvalidRule
from services.warning.models import Severity, Signal

TIERS = tuple(t.value for t in Tier)  # profile's definition: one list of tiers
DEFAULT_TIER = "*"  # the row of the thresholds table that customers without an override use


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def check_new(self) -> None:
        """Rules a new version must meet beyond what every stored version met, so that
        stored versions stay readable; raises InvalidRule naming the parameter."""


class ContractExpiryParams(Params):
    days_before: int = Field(30, ge=1, le=180, description="contract ends within this many days")


class UsageDropParams(Params):
    recent_days: int = Field(7, ge=1, le=30)
    baseline_days: int = Field(30, ge=7, le=60, description="the days before the recent window")
    drop_pct: int = Field(40, ge=1, le=100, description="fire when a daily average falls this much")
    min_recent_days: int = Field(5, ge=1, le=30, description="days of data needed in the window")
    min_baseline_days: int = Field(20, ge=1, le=60)
    # Below these baselines a fall means nothing (a data-only SIM has no minutes to lose).
    # Positive in every new version (check_new); versions stored before that may hold 0,
    # which detection guards against.
    min_baseline_minutes: float = Field(10, ge=0, description="must be greater than 0")
    min_baseline_calls: float = Field(1, ge=0, description="must be greater than 0")
    min_baseline_data_mb: float = Field(50, ge=0, description="must be greater than 0")
    min_baseline_spend: float = Field(1, ge=0, description="must be greater than 0")

    def check_new(self) -> None:
        for name in (
            "min_baseline_minutes", "min_baseline_calls", "min_baseline_data_mb",
            "min_baseline_spend",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise InvalidRule(f"params.{name}: must be greater than 0", field=f"params.{name}")

    @model_validator(mode="after")
    def _windows(self) -> UsageDropParams:
        if self.min_recent_days > self.recent_days:
            raise ValueError("min_recent_days 不能大于 recent_days")
        if self.min_baseline_days > self.baseline_days:
            raise ValueError("min_baseline_days 不能大于 baseline_days")
        return self


class ZeroCallsParams(Params):
    days: int = Field(5, ge=2, le=30, description="consecutive days without an outgoing call")
    within_days: int = Field(
        10,
        ge=2,
        le=60,
        description="the run lies in this many last days and no call followed it (calls "
        "on the detection day itself end the silence)",
    )

    @model_validator(mode="after")
    def _window(self) -> ZeroCallsParams:
        if self.within_days < self.days:
            raise ValueError("within_days 不能小于 days")
        return self


class CompetitorHotlineParams(Params):
    min_calls: int = Field(2, ge=1, le=100)
    within_days: int = Field(14, ge=1, le=60)


class CompetitorMarketingParams(Params):
    min_contacts: int = Field(3, ge=1, le=100, description="inbound marketing from other networks")
    within_days: int = Field(14, ge=1, le=60)
    share_pct: int = Field(60, ge=1, le=100, description="share of calls into other networks")
    share_rise_pct: int = Field(20, ge=0, le=100, description="points above the baseline share")
    recent_days: int = Field(7, ge=1, le=30)
    baseline_days: int = Field(30, ge=7, le=60)


class CallForwardingParams(Params):
    min_calls: int = Field(3, ge=1, le=1000)
    within_days: int = Field(7, ge=1, le=60)


class SpendBelowPlanParams(Params):
    period_days: int = Field(30, ge=7, le=60)
    below_pct: int = Field(80, ge=1, le=100, description="spend under this share of the plan fee")
    min_days: int = Field(25, ge=1, le=60, description="days of data needed in the period")

    @model_validator(mode="after")
    def _window(self) -> SpendBelowPlanParams:
        if self.min_days > self.period_days:
            raise ValueError("min_days 不能大于 period_days")
        return self


class LowBalanceParams(Params):
    max_balance: float = Field(15, ge=0, le=10_000, description="yuan; fire below this balance")


class ComplaintParams(Params):
    pass


PARAMS: dict[Signal, type[Params]] = {
    Signal.contract_expiry: ContractExpiryParams,
    Signal.usage_drop: UsageDropParams,
    Signal.zero_calls: ZeroCallsParams,
    Signal.competitor_hotline: CompetitorHotlineParams,
    Signal.competitor_marketing: CompetitorMarketingParams,
    Signal.call_forwarding: CallForwardingParams,
    Signal.spend_below_plan: SpendBelowPlanParams,
    Signal.low_balance: LowBalanceParams,
    Signal.complaint: ComplaintParams,
}

DEFAULT_WEIGHTS: dict[Signal, int] = {
    Signal.contract_expiry: 25,
    Signal.usage_drop: 30,
    Signal.zero_calls: 30,
    Signal.competitor_hotline: 40,
    Signal.competitor_marketing: 30,
    Signal.call_forwarding: 45,
    Signal.spend_below_plan: 20,
    Signal.low_balance: 15,
    Signal.complaint: 35,
}


class Rule(BaseModel):
    """One signal's rule, for all tiers (``tier`` None) or as an override for one tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: Signal
    tier: str | None = None
    enabled: bool = True
    weight: int = Field(ge=0, le=100, description="points this signal adds to the risk score")
    cooling_off_days: int = Field(
        14, ge=0, le=365, description="after a retained or false-alarm outcome, quiet this long"
    )
    params: dict[str, Any] = {}

    def typed_params(self) -> Params:
        return PARAMS[self.signal].model_validate(self.params)


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    min_score: int = Field(ge=0, le=100)
    due_days: int = Field(ge=0, le=60, description="days from detection to the due date")


DEFAULT_BANDS: tuple[Band, ...] = (
    Band(severity=Severity.critical, min_score=70, due_days=1),
    Band(severity=Severity.high, min_score=45, due_days=2),
    Band(severity=Severity.medium, min_score=25, due_days=5),
    Band(severity=Severity.low, min_score=0, due_days=10),
)


def default_rules() -> list[Rule]:
    return [
        Rule(signal=s, weight=DEFAULT_WEIGHTS[s], params=PARAMS[s]().model_dump()) for s in Signal
    ]


def validate_rule(rule: Rule) -> Rule:
    """The rule with complete, checked params; InvalidRule names the offending field."""
    if rule.tier is not None and rule.tier not in TIERS:
        raise InvalidRule(f"未知等级 {rule.tier!r}；须为 {', '.join(TIERS)} 之一", field="tier")
    try:
        params = rule.typed_params()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        field = f"params.{where}" if where else "params"
        raise InvalidRule(f"{field}：{chinese_message(error)}", field=field) from exc
    params.check_new()
    return rule.model_copy(update={"params": params.model_dump()})


def validate_bands(bands: list[Band]) -> list[Band]:
    ordered = sorted(bands, key=lambda b: b.min_score, reverse=True)
    if not ordered or ordered[-1].min_score != 0:
        raise InvalidRule("最低一档须从 0 分开始", field="bands")
    if len({b.min_score for b in ordered}) != len(ordered):
        raise InvalidRule("两档的起始分数相同", field="bands")
    return ordered


class Thresholds:
    """The effective rule of every signal for every tier that has an override, plus the
    default row, flattened for the detection query (one row per tier)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.defaults = {r.signal: r for r in rules if r.tier is None}
        missing = set(Signal) - set(self.defaults)
        if missing:
            raise InvalidRule(f"{', '.join(sorted(missing))} 缺少默认规则", field="rules")
        self.overrides: dict[tuple[str | None, Signal], Rule] = {
            (r.tier, r.signal): r for r in rules if r.tier is not None
        }
        self.tiers = sorted({tier for tier, _ in self.overrides if tier is not None})

    def rule(self, signal: Signal, tier: str | None) -> Rule:
        return self.overrides.get((tier, signal)) or self.defaults[signal]

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for tier in (DEFAULT_TIER, *self.tiers):
            row: dict[str, Any] = {"tier": tier}
            for signal in Signal:
                rule = self.rule(signal, None if tier == DEFAULT_TIER else tier)
                prefix = column_prefix(signal)
                row[f"{prefix}_on"] = rule.enabled
                row[f"{prefix}_weight"] = rule.weight
                row[f"{prefix}_cool"] = rule.cooling_off_days
                for name, value in rule.typed_params().model_dump().items():
                    row[f"{prefix}_{name}"] = value
            rows.append(row)
        return rows

    def max_param(self, signal: Signal, *names: str) -> int:
        """The longest window any tier uses, in days, summed over ``names``."""
        rules = [self.defaults[signal], *(r for (_, s), r in self.overrides.items() if s == signal)]
        return max(sum(int(r.params[n]) for n in names) for r in rules)


def column_prefix(signal: Signal) -> str:
    return {
        Signal.contract_expiry: "ce",
        Signal.usage_drop: "ud",
        Signal.zero_calls: "zc",
        Signal.competitor_hotline: "ch",
        Signal.competitor_marketing: "cm",
        Signal.call_forwarding: "cf",
        Signal.spend_below_plan: "sb",
        Signal.low_balance: "lb",
        Signal.complaint: "co",
    }[signal]


def threshold_columns() -> str:
    """The column list of ``jsonb_to_recordset`` for :meth:`Thresholds.rows`."""
    sql_type = {int: "int", float: "numeric", bool: "boolean"}
    columns = ["tier text"]
    for signal in Signal:
        prefix = column_prefix(signal)
        columns += [f"{prefix}_on boolean", f"{prefix}_weight int", f"{prefix}_cool int"]
        for name, field in PARAMS[signal].model_fields.items():
            assert field.annotation in sql_type, (signal, name)
            columns.append(f"{prefix}_{name} {sql_type[field.annotation]}")
    return ", ".join(columns)
