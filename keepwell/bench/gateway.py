"""``keepwell bench gateway``: a realistic mix of GraphQL queries (customer 360, a
manager's work queue, a page of 50 customers with warnings and managers) at fixed
concurrency, next to hand-written FastAPI endpoints making the same service calls (the
floor of this stack); requests per second, p50/p95/p99 and the p50 ratio per query."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.bench._report import QUICK_HELP, size_help

FULL = {"concurrency": 16, "seconds": 15.0, "rounds": 5, "customers": 500}
QUICK = {"concurrency": 4, "seconds": 1.0, "rounds": 1, "customers": 40}


def register(bench: typer.Typer) -> None:
    @bench.command("gateway")
    def gateway(
        url: Annotated[
            str | None, typer.Option(help="A running gateway; unset: start a system of its own.")
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Requests in flight.", "concurrency", FULL, QUICK)),
        ] = None,
        seconds: Annotated[
            float | None,
            typer.Option(
                min=0.1, help=size_help("Seconds per query and side.", "seconds", FULL, QUICK)
            ),
        ] = None,
        rounds: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Alternating rounds per side.", "rounds", FULL, QUICK)
            ),
        ] = None,
        customers: Annotated[
            int | None,
            typer.Option(
                min=10,
                help=size_help("Demo customers of its own system.", "customers", FULL, QUICK),
            ),
        ] = None,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """GraphQL through the gateway vs. the same calls by hand; prints JSON."""
        from keepwell.bench._gateway import run
        from keepwell.bench._report import run_bench, sized

        if url is not None:
            # Against a running system: its service URLs (the floor calls them) come from
            # its run file, as for any other command.
            from services.kit.runfile import apply_to_environ

            apply_to_environ()
        size = sized(
            quick,
            FULL,
            QUICK,
            concurrency=concurrency,
            seconds=seconds,
            rounds=rounds,
            customers=customers,
        )
        run_bench(
            "gateway",
            lambda found: run(found, url, **size),
            quick=quick,
            # Against a running gateway there is nothing to start.
            database=url is None,
            redis=url is None,
        )
