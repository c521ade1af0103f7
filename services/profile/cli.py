"""Commands of the profile service: ``keepwell import customers``, ``keepwell recompute-tiers``
and ``keepwell profile snapshot``.

Only typer (and the standard library) at module level, so every ``keepwell`` command starts
fast; the work is imported inside each command.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

profile_app = typer.Typer(help="Profile service operations.", no_args_is_help=True)


@profile_app.command("snapshot")
def snapshot(
    day: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="Beijing date; default today."),
    ] = None,
) -> None:
    """Take the VIP base snapshot (拍照) of a day now, as the monthly job does on the 1st.
    A day taken already is left as it is (`created` false)."""
    from services.kit.config import get_settings
    from services.kit.errors import DomainError
    from services.profile.ops import run_snapshot

    try:
        taken = asyncio.run(run_snapshot(get_settings().database_url, day.date() if day else None))
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(taken.model_dump_json())


def register(app: typer.Typer, imports: typer.Typer) -> None:
    app.add_typer(profile_app, name="profile")

    @imports.command("customers")
    def import_customers(
        file: Annotated[
            Path, typer.Argument(exists=True, dir_okay=False, help="CSV (header) or JSON lines")
        ],
        actor: Annotated[str, typer.Option(help="Recorded as who made the changes.")] = "import",
        show_errors: Annotated[int, typer.Option(help="Bad rows to print.")] = 50,
    ) -> None:
        """Upsert customers by MSISDN from the operator's feed; bad rows are reported with
        line, column and reason and skipped. Loading the same file twice changes nothing."""
        from rich.console import Console

        from services.kit.config import get_settings
        from services.profile.ops import run_import

        console = Console(stderr=True)
        summary = asyncio.run(run_import(get_settings().database_url, file, actor, console))
        for issue in summary.errors[:show_errors]:
            column = f" {issue.column}" if issue.column else ""
            console.print(f"line {issue.line}{column}: {issue.reason}", markup=False)
        typer.echo(summary.model_dump_json(exclude={"errors"}))
        if summary.rejected:
            raise typer.Exit(code=2)

    @app.command("recompute-tiers")
    def recompute_tiers(
        month: Annotated[
            str | None, typer.Option(help="YYYY-MM the run is for; default: this month.")
        ] = None,
    ) -> None:
        """Recompute RFM scores, tiers and value quadrants from the last 3 complete months
        of billing (what the monthly job does)."""
        from services.kit.config import get_settings
        from services.profile.ops import run_recompute

        as_of = date.fromisoformat(f"{month}-01") if month else None
        summary = asyncio.run(run_recompute(get_settings().database_url, as_of))
        typer.echo(summary.model_dump_json())
