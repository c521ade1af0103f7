"""``keepwell bench complaints``: (a) opening tickets through the HTTP API at a given
concurrency, with the complaint service, its relay and the warning and profile consumers
running as separate processes, as in production; (b) one SLA sweep over many open tickets,
some past due, with two sweepers started at once: seconds, escalations, duplicates."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.bench._report import QUICK_HELP, size_help

FULL = {"requests": 4000, "concurrency": 32, "tickets": 200_000, "past_due": 10_000, "sweepers": 2}
QUICK = {"requests": 100, "concurrency": 8, "tickets": 2_000, "past_due": 200, "sweepers": 2}


def register(bench: typer.Typer) -> None:
    @bench.command("complaints")
    def complaints(
        requests: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Tickets opened over HTTP in (a).", "requests", FULL, QUICK)
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Requests in flight in (a).", "concurrency", FULL, QUICK)
            ),
        ] = None,
        tickets: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Open tickets for the sweep (b).", "tickets", FULL, QUICK)
            ),
        ] = None,
        past_due: Annotated[
            int | None,
            typer.Option(min=0, help=size_help("Of which past due.", "past_due", FULL, QUICK)),
        ] = None,
        sweepers: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Sweepers started at once.", "sweepers", FULL, QUICK)
            ),
        ] = None,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Open tickets over HTTP, then sweep SLAs twice at once; prints JSON."""
        from keepwell.bench._complaints import run
        from keepwell.bench._report import run_bench, sized

        size = sized(
            quick,
            FULL,
            QUICK,
            requests=requests,
            concurrency=concurrency,
            tickets=tickets,
            past_due=past_due,
            sweepers=sweepers,
        )
        if size["past_due"] > size["tickets"]:
            raise typer.BadParameter("cannot exceed --tickets", param_hint="--past-due")
        run_bench("complaints", lambda found: run(found, **size), quick=quick, redis=True)
