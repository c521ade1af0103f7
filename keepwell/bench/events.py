"""``keepwell bench events``: produce -> relay -> effect in a consumer, end to end, then
the event tables' rows and sizes before and after pruning the older part."""

from __future__ import annotations

from typing import Annotated

import typer


def register(bench: typer.Typer) -> None:
    @bench.command("events")
    def events(
        events: Annotated[int, typer.Option(help="How many events to produce.")] = 100_000,
        aggregates: Annotated[int, typer.Option(help="Spread over this many aggregates.")] = 10_000,
        relays: Annotated[int, typer.Option(help="Relays running at once.")] = 2,
        batch: Annotated[int, typer.Option(help="Events per producing transaction.")] = 100,
        prune_share: Annotated[
            float,
            typer.Option(min=0.0, max=1.0, help="About this share, the oldest, is pruned."),
        ] = 0.5,
    ) -> None:
        """Events per second from publish to the consumer's effect, and the lag; then the
        event tables' rows and sizes before and after pruning the oldest events."""
        import asyncio
        import json

        from keepwell.bench._events import run

        result = asyncio.run(run(events, aggregates, relays, batch, prune_share))
        typer.echo(json.dumps(result, indent=2))
