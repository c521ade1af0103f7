"""Alembic environment: one service's schema at a time, asynchronously over asyncpg."""

from __future__ import annotations

import asyncio
import importlib

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from migrations import MODELS
from migrations.env_support import include_name_for, include_object_for
from services.kit.db import async_url, metadata

config = context.config
service: str = (
    config.attributes.get("service") or context.get_x_argument(as_dictionary=True)["service"]
)

# Every service's tables register on the shared MetaData; import them all so foreign
# keys resolve, then compare only this service's schema.
for module in MODELS.values():
    importlib.import_module(module)


def run_with(connection: Connection) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_schemas=True,
        include_name=include_name_for(service),
        include_object=include_object_for(service),
        version_table_schema=service,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(async_url(config.get_main_option("sqlalchemy.url") or ""))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
asyncio.run(run_online())
