"""``keepwell bench chaos``: a campaign and an event stream while a random process is
SIGKILLed every few seconds and started again; nothing may be sent twice or lost."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.bench._report import QUICK_HELP, size_help

FULL = {"recipients": 200_000, "events": 50_000, "interval": 10.0}
QUICK = {"recipients": 5_000, "events": 2_000, "interval": 1.0}


def register(bench: typer.Typer) -> None:
    @bench.command("chaos")
    def chaos(
        recipients: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Campaign audience.", "recipients", FULL, QUICK)),
        ] = None,
        events: Annotated[
            int | None,
            typer.Option(
                min=100,
                help=size_help("Customers imported into profile meanwhile.", "events", FULL, QUICK),
            ),
        ] = None,
        interval: Annotated[
            float | None,
            typer.Option(
                min=1.0, help=size_help("Seconds between kills.", "interval", FULL, QUICK)
            ),
        ] = None,
        seed: Annotated[
            int, typer.Option(help="Seed of the kills drawn (same seed, same kinds).")
        ] = 1,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Kill a random process (worker, service, relay, Redis) every --interval seconds
        through a campaign and an event stream, restart it; prints JSON with duplicates,
        lost and the time to recover after each kill."""
        from keepwell.bench._chaos import run
        from keepwell.bench._report import run_bench, sized

        size = sized(quick, FULL, QUICK, recipients=recipients, events=events, interval=interval)
        run_bench("chaos", lambda found: run(found, **size, seed=seed), quick=quick)
