"""What the profile commands run (kept apart so ``cli.py`` imports only typer)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from services.kit.bulk import raw_connection
from services.profile.importer import import_file
from services.profile.schemas import ImportSummary, RecomputeSummary


async def run_import(
    database_url: str, path: Path, size: int, actor: str, console: Console
) -> ImportSummary:
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"importing {path.name}", total=size)

        def advance(n: int) -> None:
            progress.advance(task, n)

        async with raw_connection(database_url) as conn:
            summary = await import_file(conn, path, actor=actor, on_bytes=advance)
        progress.update(task, description=f"imported {path.name}")
    return summary


async def run_recompute(database_url: str, as_of: date | None) -> RecomputeSummary:
    from services.profile.tiers import recompute

    async with raw_connection(database_url) as conn, conn.transaction():
        return await recompute(conn, as_of)
