"""Database engine, sessions and the table base every service uses.

The request owns the transaction: :func:`session_scope` commits when the block ends
cleanly and rolls back otherwise. Repositories and services never commit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, MetaData
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

logger = logging.getLogger("keepwell.db")

# Explicit constraint names so migrations are reviewable and reversible.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

metadata: MetaData = SQLModel.metadata
"""One MetaData for all services; each table names its service's schema, and migrations
filter by schema so every service keeps its own history."""


def async_url(url: str) -> str:
    """Accept the plain ``postgresql://`` form people configure and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The ``postgresql://`` form that asyncpg.connect and psql understand."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        **kwargs,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


AfterCommit = Callable[[], Awaitable[object]]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed (never on rollback).

    For nudges only (e.g. wake the event relay): a failed callback is logged, and
    whatever it nudges must also be found by a periodic sweep.
    """
    session.info.setdefault("after_commit", []).append(callback)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession], **info: Any
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error.

    ``info`` lands in ``session.info`` for code that needs process resources (the Redis
    client that after-commit nudges use, for instance).
    """
    async with sessionmaker() as session:
        session.info.update(info)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            logger.warning("after-commit callback failed", exc_info=True)


def enum_column(enum: type[StrEnum], name: str, *, nullable: bool = False, **kwargs: Any) -> Any:
    """A VARCHAR column with a CHECK constraint: adding a value is a reviewed migration,
    without the ALTER TYPE dance native PostgreSQL enums need."""
    return Column(
        SAEnum(
            enum,
            name=name,
            native_enum=False,
            create_constraint=True,
            length=max(len(m.value) for m in enum),
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        nullable=nullable,
        **kwargs,
    )
