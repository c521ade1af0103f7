"""Set-based loading with PostgreSQL COPY, for imports and demo data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from services.kit.db import libpq_url


@asynccontextmanager
async def raw_connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection: COPY needs the driver, not the ORM."""
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def copy_rows(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> int:
    """Stream ``rows`` into ``schema.table`` with COPY; returns how many were written."""
    status: str = await conn.copy_records_to_table(
        table, schema_name=schema, columns=list(columns), records=rows
    )
    return int(status.split()[-1])
