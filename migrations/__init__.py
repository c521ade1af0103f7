"""Alembic migrations, one history per service, each in the service's own schema.

``migrations/<service>/`` holds that service's revisions and its ``alembic_version``
table lives in its schema, so a service's tables change without touching the others.
Alembic's env is async (asyncpg), so these functions are synchronous and run their own
event loop: from async code, call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from services.kit.config import SCHEMAS, SERVICES

HERE = Path(__file__).resolve().parent

MODELS: dict[str, str] = {s: f"services.{s}.models" for s in SERVICES} | {
    "gateway": "gateway.models"
}
"""The module whose tables each schema's migrations describe."""


def alembic_config(service: str, database_url: str) -> Config:
    if service not in SCHEMAS:
        raise ValueError(f"unknown schema {service!r}; one of {', '.join(SCHEMAS)}")
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("version_locations", str(HERE / service))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(database_url: str, services: tuple[str, ...] = SCHEMAS, revision: str = "head") -> None:
    for service in services:
        command.upgrade(alembic_config(service, database_url), revision)


def behind(database_url: str, services: tuple[str, ...] = SCHEMAS) -> tuple[str, ...]:
    """The schemas not at their migrations' head. Reads only the revision
    files and each schema's ``alembic_version``: much cheaper than an upgrade that finds
    nothing to do, which loads every service's models first."""
    from alembic.script import ScriptDirectory

    current = asyncio.run(_current_revisions(database_url, services))
    return tuple(
        s
        for s in services
        if set(ScriptDirectory.from_config(alembic_config(s, database_url)).get_heads())
        != current[s]
    )


async def _current_revisions(database_url: str, services: tuple[str, ...]) -> dict[str, set[str]]:
    import asyncpg

    from services.kit.db import libpq_url

    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        found: dict[str, set[str]] = {}
        for service in services:
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{service}.alembic_version")
            rows = (
                await conn.fetch(f'SELECT version_num FROM "{service}".alembic_version')
                if exists
                else []
            )
            found[service] = {r["version_num"] for r in rows}
        return found
    finally:
        await conn.close()


def downgrade(
    database_url: str, services: tuple[str, ...] = SCHEMAS, revision: str = "base"
) -> None:
    for service in reversed(services):
        command.downgrade(alembic_config(service, database_url), revision)


def revision(database_url: str, service: str, message: str) -> None:
    """Autogenerate a new revision for one service from the difference to its models."""
    command.revision(alembic_config(service, database_url), message=message, autogenerate=True)
