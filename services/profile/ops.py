"""What the profile commands do (kept apart so ``cli.py`` imports only typer)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.console import Console

from services.kit.bulk import raw_connection
from services.kit.progress import file_progress
from services.profile.importer import import_file
from services.profile.schemas import ImportSummary, RecomputeSummary, SnapshotTaken


async def run_import(database_url: str, path: Path, actor: str, console: Console) -> ImportSummary:
    """Import a file, with a progress bar on a terminal and a summary line on ``console``."""
    with file_progress(path, console) as progress:
        async with raw_connection(database_url) as conn:
            summary = await import_file(conn, path, actor=actor, on_bytes=progress.line)
        progress.finished(summary.rows)
    return summary


async def run_recompute(database_url: str, as_of: date | None) -> RecomputeSummary:
    from services.profile.tiers import recompute

    async with raw_connection(database_url) as conn, conn.transaction():
        return await recompute(conn, as_of)


async def run_snapshot(database_url: str, day: date | None) -> SnapshotTaken:
    """Take the VIP base snapshot of ``day`` (default today, Beijing) in one transaction."""
    from services.kit.db import create_engine, create_sessionmaker, session_scope
    from services.profile.service import take_snapshot

    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await take_snapshot(session, day, "keepwell profile snapshot")
    finally:
        await engine.dispose()
