"""Reports per team / category / channel / handler over a period (Beijing dates): SLA
compliance per metric, average and p90 time per step (business hours), satisfaction, the
repeat-complaint rate and compensation totals. Three set-based queries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint.models import SCHEMA
from services.complaint.repository import Scope
from services.complaint.schemas import GroupReport, MetricReport, Report

GROUP_COLUMNS = {
    "team": "t.team_id",
    "category": "t.category",
    "channel": "t.channel",
    "handler": "t.handler_id",
}

_SCOPE = """(CAST(:team AS text) IS NULL OR t.team_id = :team)
  AND (CAST(:handler AS text) IS NULL OR t.handler_id = :handler)
  AND t.opened_at >= :start AND t.opened_at < :end"""


async def report(
    session: AsyncSession, scope: Scope, group_by: str, start: date, end: date
) -> Report:
    from services.complaint.service import period_bounds

    group = GROUP_COLUMNS[group_by]
    lo, hi = period_bounds(start, end)
    params: dict[str, Any] = {
        "team": scope.team_id,
        "handler": scope.handler_id,
        "start": lo,
        "end": hi,
    }
    tickets = await session.execute(
        text(f"""
        SELECT {group} AS g, count(*) AS opened,
               count(*) FILTER (WHERE t.state = 'closed') AS closed,
               avg(CASE WHEN t.is_repeat THEN 1.0 ELSE 0.0 END) AS repeat_rate,
               avg(t.satisfaction) AS satisfaction
        FROM {SCHEMA}.ticket t WHERE {_SCOPE} GROUP BY 1 ORDER BY 1 NULLS LAST
        """),
        params,
    )
    metrics = await session.execute(
        text(f"""
        SELECT {group} AS g, c.metric,
               count(*) FILTER (WHERE c.state IN ('met', 'breached')) AS stopped,
               count(*) FILTER (WHERE c.state = 'met') AS met,
               count(*) FILTER (WHERE c.state = 'breached' OR c.breached_at IS NOT NULL)
                 AS breached,
               avg(c.used_seconds) FILTER (WHERE c.state IN ('met', 'breached') AND c.business)
                 / 3600 AS avg_hours,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY c.used_seconds)
                 FILTER (WHERE c.state IN ('met', 'breached') AND c.business) / 3600 AS p90_hours
        FROM {SCHEMA}.sla_clock c JOIN {SCHEMA}.ticket t ON t.id = c.ticket_id
        WHERE {_SCOPE} GROUP BY 1, 2 ORDER BY 1, 2
        """),
        params,
    )
    money = await session.execute(
        text(f"""
        SELECT {group} AS g, coalesce(sum(p.amount_fen), 0) AS fen
        FROM {SCHEMA}.compensation p JOIN {SCHEMA}.ticket t ON t.id = p.ticket_id
        WHERE p.status = 'executed' AND {_SCOPE} GROUP BY 1
        """),
        params,
    )
    by_group: dict[Any, list[MetricReport]] = {}
    for m in metrics:
        decided = m.stopped  # met or breached: a clock still running decides nothing yet
        by_group.setdefault(m.g, []).append(
            MetricReport(
                metric=m.metric,
                stopped=m.stopped,
                met=m.met,
                breached=m.breached,
                compliance=round(m.met / decided, 4) if decided else None,
                avg_business_hours=round(float(m.avg_hours), 2)
                if m.avg_hours is not None
                else None,
                p90_business_hours=round(float(m.p90_hours), 2)
                if m.p90_hours is not None
                else None,
            )
        )
    paid = {r.g: Decimal(r.fen) / 100 for r in money}
    groups = [
        GroupReport(
            group=None if r.g is None else str(r.g),
            opened=r.opened,
            closed=r.closed,
            repeat_rate=round(float(r.repeat_rate), 4) if r.repeat_rate is not None else None,
            avg_satisfaction=round(float(r.satisfaction), 2)
            if r.satisfaction is not None
            else None,
            compensation_executed=paid.get(r.g, Decimal("0")).quantize(Decimal("0.01")),
            metrics=by_group.get(r.g, []),
        )
        for r in tickets
    ]
    return Report(group_by=group_by, start=start, end=end, groups=groups)
