"""Tables of the warning service (schema ``warning``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Column, Numeric
from sqlmodel import Field, SQLModel

from services.kit.events import event_tables

SCHEMA = "warning"


class DailyUsage(SQLModel, table=True):
    """One subscriber's usage on one day, as delivered by the operator's nightly feed."""

    __tablename__ = "daily_usage"
    __table_args__ = {"schema": SCHEMA}

    msisdn: str = Field(primary_key=True, max_length=11)
    day: date = Field(primary_key=True)
    outgoing_calls: int
    minutes: int
    data_mb: int
    spend: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    balance: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    competitor_hotline_calls: int = 0
    forwarded_to_other_network: int = 0
    other_network_call_share: float = 0.0
    competitor_marketing_contacts: int = 0


events = event_tables(SCHEMA)
