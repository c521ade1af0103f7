"""Tables of the profile service (schema ``profile``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.kit.db import enum_column, utcnow
from services.kit.events import event_tables

SCHEMA = "profile"


class Gender(StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class Tier(StrEnum):
    diamond = "diamond"
    gold = "gold"
    silver = "silver"
    none = "none"


class ServiceLevel(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class Lifecycle(StrEnum):
    acquisition = "acquisition"
    growth = "growth"
    maturity = "maturity"
    decline = "decline"
    churn = "churn"


class CustomerStatus(StrEnum):
    active = "active"
    churned = "churned"


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    region: str = Field(max_length=50)
    supervisor_name: str = Field(max_length=50)
    created_at: datetime = _created()


class Manager(SQLModel, table=True):
    __tablename__ = "manager"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=50)
    phone: str = Field(max_length=20)
    team_id: str = Field(foreign_key=f"{SCHEMA}.team.id", index=True, max_length=32)
    active: bool = True
    created_at: datetime = _created()


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    msisdn: str = Field(max_length=11, unique=True)
    name: str = Field(max_length=50)
    gender: Gender = Field(sa_column=enum_column(Gender, "gender"))
    birthday: date | None = None
    region: str = Field(max_length=50)
    city: str = Field(max_length=50)
    time_zone: str = Field(default="Asia/Shanghai", max_length=50)
    join_date: date
    plan_name: str = Field(max_length=100)
    plan_fee: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    contract_end: date | None = None
    balance: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    status: CustomerStatus = Field(sa_column=enum_column(CustomerStatus, "status"))
    tier: Tier = Field(sa_column=enum_column(Tier, "tier"))
    service_level: ServiceLevel = Field(sa_column=enum_column(ServiceLevel, "service_level"))
    lifecycle: Lifecycle = Field(sa_column=enum_column(Lifecycle, "lifecycle"))
    manager_id: str | None = Field(
        default=None, foreign_key=f"{SCHEMA}.manager.id", index=True, max_length=32
    )
    interests: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    preferences: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    taboos: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    important_dates: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    sms_opt_out: bool = False
    preferred_hours_start: int = 9
    preferred_hours_end: int = 21
    version: int = 1
    created_at: datetime = _created()
    updated_at: datetime = _created()


events = event_tables(SCHEMA)
