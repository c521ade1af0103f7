"""Commands of the warning service: ``keepwell import usage``, ``keepwell detect`` and
``keepwell warning rebuild-customers``. Heavy imports happen inside the commands."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

warning_app = typer.Typer(help="Warning service operations.", no_args_is_help=True)


def register(app: typer.Typer, imports: typer.Typer) -> None:
    app.add_typer(warning_app, name="warning")
    app.command("detect")(detect)
    imports.command("usage")(import_usage)


def detect(
    day: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="Defaults to yesterday."),
    ] = None,
) -> None:
    """Run churn-warning detection for one day now (safe to repeat)."""
    from services.warning.ops import run_detection_command

    result = asyncio.run(run_detection_command(day.date() if day else None))
    typer.echo(result.model_dump_json(indent=2))


def import_usage(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    batch_rows: Annotated[int, typer.Option(help="Rows per COPY batch.")] = 50_000,
) -> None:
    """Import daily usage from CSV (with a header) or JSON lines. Bad rows are reported with
    their line numbers and skipped; good rows are kept; a subscriber-day imported again
    replaces the earlier row."""
    from services.warning.ops import import_usage_file

    summary: dict[str, Any] = asyncio.run(import_usage_file(file, batch_rows))
    for error in summary["errors"][:100]:
        typer.echo(f"line {error.row}: {error.message}", err=True)
    if len(summary["errors"]) > 100:
        typer.echo(f"... and {len(summary['errors']) - 100} more bad rows", err=True)
    typer.echo(f"imported: {summary['imported']}, rejected: {len(summary['errors'])}")
    if summary["imported"] == 0 and summary["errors"]:
        raise typer.Exit(1)


@warning_app.command("rebuild-customers")
def rebuild_customers(
    profile_url: Annotated[
        str | None, typer.Option(help="Defaults to KEEPWELL_PROFILE_URL.")
    ] = None,
) -> None:
    """Reload the customer read model from the profile service's REST API."""
    from services.warning.ops import rebuild_customers as rebuild

    counts = asyncio.run(rebuild(profile_url))
    typer.echo(f"fetched: {counts['fetched']}, applied: {counts['applied']}")
