"""A throwaway database for a benchmark: on DATABASE_URL's server, or an embedded one."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """Yields the URL of a new empty database, dropped (and its server stopped) after."""
    from services.kit.embedded import EmbeddedPostgres
    from services.kit.testing import create_scratch_database, drop_database

    server = os.environ.get("DATABASE_URL")
    embedded: EmbeddedPostgres | None = None
    if not server:
        embedded = await asyncio.to_thread(
            EmbeddedPostgres.start, Path(tempfile.mkdtemp(prefix="kw-bench-")) / "postgres"
        )
        server = embedded.url
    url = await create_scratch_database(server, prefix)
    try:
        yield url
    finally:
        await drop_database(url)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
