"""``keepwell bench events``: produce -> relay -> effect in a consumer, end to end, then
the event tables' rows and sizes before and after pruning the older part."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.bench._report import QUICK_HELP, size_help

FULL = {
    "events": 200_000,
    "aggregates": 10_000,
    "relays": 2,
    "batch": 100,
    "producers": 2,
    "drain": 1_000_000,
}
QUICK = {
    "events": 2_000,
    "aggregates": 200,
    "relays": 2,
    "batch": 100,
    "producers": 2,
    "drain": 2_000,
}


def register(bench: typer.Typer) -> None:
    @bench.command("events")
    def events(
        events: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Events to produce.", "events", FULL, QUICK)),
        ] = None,
        aggregates: Annotated[
            int | None,
            typer.Option(
                min=1,
                help=size_help("Spread over this many aggregates.", "aggregates", FULL, QUICK),
            ),
        ] = None,
        relays: Annotated[
            int | None,
            typer.Option(min=1, help=size_help("Relays running at once.", "relays", FULL, QUICK)),
        ] = None,
        batch: Annotated[
            int | None,
            typer.Option(
                min=1, help=size_help("Events per producing transaction.", "batch", FULL, QUICK)
            ),
        ] = None,
        producers: Annotated[
            int | None,
            typer.Option(
                min=1,
                help=size_help("Producer processes.", "producers", FULL, QUICK),
            ),
        ] = None,
        drain: Annotated[
            int | None,
            typer.Option(
                min=0,
                help=size_help(
                    "Deliveries of a pre-filled outbox the relays drain afterwards (0: none).",
                    "drain",
                    FULL,
                    QUICK,
                ),
            ),
        ] = None,
        prune_share: Annotated[
            float,
            typer.Option(min=0.0, max=1.0, help="About this share, the oldest, is pruned."),
        ] = 0.5,
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    ) -> None:
        """Events per second from publish to the consumer's effect, and the lag, with
        producers, relays and the consumer each in processes of their own; then how fast
        the relays drain a pre-filled outbox; then the event tables' rows and sizes before
        and after pruning the oldest events."""
        from keepwell.bench._events import run
        from keepwell.bench._report import run_bench, sized

        size = sized(
            quick,
            FULL,
            QUICK,
            events=events,
            aggregates=aggregates,
            relays=relays,
            batch=batch,
            producers=producers,
            drain=drain,
        )
        run_bench("events", lambda found: run(found, **size, prune_share=prune_share), quick=quick)
