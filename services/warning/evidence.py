"""A warning's evidence as a sentence a customer manager reads (Chinese, numbers included).

Evidence is stored as numbers (JSON); the sentence is rendered on read, so wording can
improve without touching stored warnings.
"""

from __future__ import annotations

from typing import Any

from services.warning.models import Signal

METRIC_NAMES = {
    "minutes": "通话分钟数",
    "calls": "主叫次数",
    "data_mb": "流量(MB)",
    "spend": "消费(元)",
}
SIGNAL_NAMES = {
    Signal.contract_expiry: "协议到期",
    Signal.usage_drop: "业务量突降",
    Signal.zero_calls: "多日零通话",
    Signal.competitor_hotline: "拨打竞争对手客服电话",
    Signal.competitor_marketing: "竞争对手营销/异网预警",
    Signal.call_forwarding: "呼转预警",
    Signal.spend_below_plan: "话费消费低于套餐值",
    Signal.low_balance: "余额较少",
    Signal.complaint: "投诉预警",
}


def _num(value: Any) -> str:
    number = float(value)
    return f"{number:.0f}" if number == int(number) else f"{number:.1f}"


def describe(signal: Signal, evidence: dict[str, Any]) -> str:
    e = evidence
    match signal:
        case Signal.contract_expiry:
            return (
                f"合约/捆绑将于{e['contract_end']}到期，还剩{e['days_left']}天"
                f"（套餐：{e['plan_name']}）"
            )
        case Signal.usage_drop:
            name = METRIC_NAMES.get(e["metric"], e["metric"])
            text = (
                f"{name}近{e['recent_days']}天日均{_num(e['recent_avg'])}，"
                f"较此前{e['baseline_days']}天基线日均{_num(e['baseline_avg'])}下降{e['drop_pct']}%"
            )
            others = [
                f"{METRIC_NAMES.get(m, m)}降{pct}%"
                for m, pct in e.get("drops", {}).items()
                if m != e["metric"] and pct is not None and pct >= 20
            ]
            return text + (f"；另有{'、'.join(others)}" if others else "")
        case Signal.zero_calls:
            return f"连续{e['days']}天无主叫通话（{e['first_day']}至{e['last_day']}）"
        case Signal.competitor_hotline:
            return f"近{e['within_days']}天拨打竞争对手客服电话{e['calls']}次"
        case Signal.competitor_marketing:
            parts = []
            if e.get("by_contacts"):
                parts.append(f"近{e['within_days']}天接到异网营销联系{e['contacts']}次")
            if e.get("by_share"):
                parts.append(
                    f"近{e['recent_days']}天拨往异网通话占比{e['share_pct']}%，"
                    f"此前基线为{e['baseline_share_pct']}%"
                )
            return "；".join(parts)
        case Signal.call_forwarding:
            return f"近{e['within_days']}天呼叫转移至异网号码{e['calls']}次"
        case Signal.spend_below_plan:
            return (
                f"近{e['period_days']}天消费{_num(e['spend'])}元，"
                f"仅为套餐月费{_num(e['plan_fee'])}元的{e['pct']}%"
            )
        case Signal.low_balance:
            return f"账户余额仅{_num(e['balance'])}元（低于{_num(e['max_balance'])}元）"
        case Signal.complaint:
            repeat = e.get("repeat_count", 1)
            text = f"客户投诉（{e.get('category', '')}，渠道：{e.get('channel', '')}）"
            return text + (f"，近90天第{repeat}次投诉" if repeat > 1 else "")
    return ""
