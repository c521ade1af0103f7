"""Usage histories and customers for the warning tests, written to the real database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit.db import session_scope
from services.profile.contract import CustomerSnapshot
from services.warning import service
from services.warning.models import Warning
from services.warning.schemas import DetectionResult, UsageRow

DAY = date(2026, 11, 20)
PLAN_FEE = Decimal("150.00")


def snapshot(msisdn: str, **changes: Any) -> CustomerSnapshot:
    base: dict[str, Any] = {
        "msisdn": msisdn,
        "version": 1,
        "name": "王建国",
        "gender": "male",
        "birthday": date(1975, 3, 8),
        "region": "广东",
        "city": "广州",
        "time_zone": "Asia/Shanghai",
        "join_date": date(2015, 6, 1),
        "status": "active",
        "tier": "gold",
        "service_level": "A",
        "lifecycle": "maturity",
        "manager_id": "M0001",
        "team_id": "T001",
        "plan_name": "5G畅享套餐 150元",
        "plan_fee": str(PLAN_FEE),
        "contract_end": None,
        "balance": "100.00",
        "sms_opt_out": False,
        "do_not_disturb": False,
        "preferred_hours_start": 9,
        "preferred_hours_end": 21,
        "taboos": [],
        "important_dates": [],
    }
    return CustomerSnapshot.model_validate(base | changes)


@dataclass
class History:
    """A steady subscriber (10 calls, 50 minutes, 500 MB, the plan's daily fee, 30% of calls
    into other networks) over ``days`` days ending at ``end``; ``on`` overrides given days
    (0 = the last day, 1 = the day before...)."""

    msisdn: str
    end: date = DAY
    days: int = 60
    on: dict[int, dict[str, Any]] = field(default_factory=dict)

    def set(self, last_days: range | list[int], **values: Any) -> History:
        for back in last_days:
            self.on.setdefault(back, {}).update(values)
        return self

    def only(self, days: int) -> History:
        self.days = days
        return self

    def rows(self) -> list[UsageRow]:
        rows = []
        for back in range(self.days - 1, -1, -1):
            values: dict[str, Any] = {
                "msisdn": self.msisdn,
                "day": self.end - timedelta(days=back),
                "outgoing_calls": 10,
                "minutes": 50,
                "data_mb": 500,
                "spend": Decimal("5.00"),
                "balance": Decimal("100.00"),
                "other_network_call_share": 0.3,
                "competitor_marketing_contacts": 0,
            }
            values.update(self.on.get(back, {}))
            rows.append(UsageRow.model_validate(values))
        return rows


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]

    async def customer(self, msisdn: str, **changes: Any) -> None:
        async with session_scope(self.sessions) as session:
            await service.apply_snapshots(session, [snapshot(msisdn, **changes)])

    async def usage(self, *histories: History) -> None:
        async with session_scope(self.sessions) as session:
            for h in histories:
                await service.store_usage(session, h.rows())

    async def detect(self, day: date = DAY) -> DetectionResult:
        async with session_scope(self.sessions) as session:
            return await service.run_detection(session, day)

    async def warnings(self, msisdn: str | None = None) -> list[Warning]:
        async with self.sessions() as session:
            query = select(Warning).order_by(Warning.id)  # type: ignore[arg-type]
            if msisdn is not None:
                query = query.where(Warning.msisdn == msisdn)
            return list((await session.execute(query)).scalars())

    async def signals(self, msisdn: str) -> set[str]:
        return {w.signal.value for w in await self.warnings(msisdn)}

    async def outbox(self) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                text("SELECT type, aggregate_id, payload FROM warning.outbox ORDER BY seq")
            )
            return [dict(r._mapping) for r in rows]

    async def run(self, fn: Callable[[AsyncSession], Any]) -> Any:
        async with session_scope(self.sessions) as session:
            return await fn(session)
