"""``keepwell bench complaints``: (a) opening tickets through the HTTP API at a given
concurrency, with the complaint service, its relay and the warning and profile consumers
running as separate processes, as in production; (b) one SLA sweep over many open tickets,
some past due, with two sweepers started at once: seconds, escalations, duplicates."""

from __future__ import annotations

from typing import Annotated

import typer


def register(bench: typer.Typer) -> None:
    @bench.command("complaints")
    def complaints(
        requests: Annotated[int, typer.Option(help="Tickets opened over HTTP in (a).")] = 4000,
        concurrency: Annotated[int, typer.Option(help="Requests in flight in (a).")] = 32,
        tickets: Annotated[int, typer.Option(help="Open tickets for the sweep (b).")] = 200_000,
        past_due: Annotated[int, typer.Option(help="Of which past due.")] = 10_000,
        sweepers: Annotated[int, typer.Option(help="Sweepers started at once.")] = 2,
    ) -> None:
        """Open tickets over HTTP, then sweep SLAs twice at once; prints JSON."""
        import asyncio
        import json

        from keepwell.bench._complaints import run

        result = asyncio.run(run(requests, concurrency, tickets, past_due, sweepers))
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
