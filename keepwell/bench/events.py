"""``keepwell bench events``: produce -> relay -> effect in a consumer, end to end."""

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
    ) -> None:
        """Events per second from publish to the consumer's effect, and the lag."""
        import asyncio
        import json

        from keepwell.bench._events import run

        result = asyncio.run(run(events, aggregates, relays, batch))
        typer.echo(json.dumps(result, indent=2))
