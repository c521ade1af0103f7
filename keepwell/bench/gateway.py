"""``keepwell bench gateway``: a realistic mix of GraphQL queries (customer 360, a
manager's work queue, a page of 50 customers with warnings and managers) at fixed
concurrency, next to hand-written FastAPI endpoints making the same service calls (the
floor of this stack); requests per second, p50/p95/p99 and the p50 ratio per query."""

from __future__ import annotations

from typing import Annotated

import typer


def register(bench: typer.Typer) -> None:
    @bench.command("gateway")
    def gateway(
        url: Annotated[
            str | None, typer.Option(help="A running gateway; unset: start a system of its own.")
        ] = None,
        concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 16,
        seconds: Annotated[float, typer.Option(help="Seconds per query and side.")] = 15.0,
    ) -> None:
        """GraphQL through the gateway vs. the same calls by hand; prints JSON."""
        import asyncio
        import json

        import httpx

        from keepwell.bench._gateway import run

        try:
            result = asyncio.run(run(url, concurrency, seconds))
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            typer.echo(f"bench gateway: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
