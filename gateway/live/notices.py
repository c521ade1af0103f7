"""What a team's staff channels are told of each live event, in Chinese.

Only what a team must act on: warnings from high severity up (lower ones wait in the work
queue), every SLA breach and escalation; and only for an event that names its team. A group
chat is read by many: numbers are masked, as partners see them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from gateway.channels import Notice
from gateway.live.contract import ESCALATED, SLA_BREACHED, WARNING_RAISED
from services.kit.clock import BEIJING
from services.kit.masking import mask_msisdn
from services.warning.evidence import SIGNAL_NAMES
from services.warning.models import Severity, Signal

SEVERITY_NAMES = {
    Severity.low: "低",
    Severity.medium: "中",
    Severity.high: "高",
    Severity.critical: "紧急",
}
_NOTIFIED = {Severity.high, Severity.critical}
METRIC_NAMES = {
    "first_response": "首次响应",
    "facts_clarified": "核实情况",
    "solution_agreed": "商定方案",
    "tracking": "跟踪回访",
    "resolution": "办结",
}


def _when(instant: Any) -> str:
    return datetime.fromisoformat(str(instant)).astimezone(BEIJING).strftime("%m-%d %H:%M")


def notice_of(event_id: uuid.UUID, event_type: str, p: dict[str, Any]) -> Notice | None:
    team = p.get("team_id")
    if team is None:
        return None
    if event_type == WARNING_RAISED:
        severity = Severity(p["severity"])
        if severity not in _NOTIFIED:
            return None
        signal = SIGNAL_NAMES.get(Signal(p["signal"]), p["signal"])
        return Notice(
            event_id,
            team,
            "warning",
            f"{SEVERITY_NAMES[severity]}风险预警：{signal}",
            [
                f"客户 {mask_msisdn(p['msisdn'])}，风险分 {p['risk_score']}",
                str(p["summary"]),
                f"客户经理 {p.get('manager_id') or '未分配'}，请于 {p['due_on']} 前跟进",
            ],
        )
    metric = METRIC_NAMES.get(str(p["metric"]), str(p["metric"]))
    if event_type == SLA_BREACHED:
        return Notice(
            event_id,
            team,
            "sla_breached",
            f"投诉超时：{p['number']}",
            [
                f"{metric}时限 {_when(p['due_at'])} 已过",
                f"客户 {mask_msisdn(p['msisdn'])}，处理人 {p.get('handler_id') or '未分配'}",
            ],
        )
    if event_type == ESCALATED:
        return Notice(
            event_id,
            team,
            "escalated",
            f"投诉升级（{p['level']} 级）：{p['number']}",
            [
                f"{metric}时限 {_when(p['due_at'])}",
                f"已升级至 {p.get('escalated_to') or '升级负责人'}",
            ],
        )
    return None
