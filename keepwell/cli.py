"""The ``keepwell`` command: run, serve, migrate, seed and operate the system."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from services.kit.config import SERVICES, get_settings

app = typer.Typer(help="Keepwell: VIP customer retention backend.", no_args_is_help=True)
imports = typer.Typer(help="Bulk imports (CSV or JSON lines), idempotent.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks; each prints one JSON document.", no_args_is_help=True)
app.add_typer(imports, name="import")
app.add_typer(bench, name="bench")
events = typer.Typer(help="Event deliveries: dead letters and replay.", no_args_is_help=True)
app.add_typer(events, name="events")

Service = StrEnum("Service", {s: s for s in SERVICES})  # type: ignore[misc]
Process = StrEnum("Process", {s: s for s in ("gateway", *SERVICES)})  # type: ignore[misc]


@app.callback()
def _find_running_system(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback when a command fails.")
    ] = False,
) -> None:
    """Keepwell: VIP customer retention backend.

    Commands reach the system that `keepwell run` started here (its URLs are in
    KEEPWELL_DATA_DIR/run.json) unless DATABASE_URL, REDIS_URL or service URLs are set."""
    # `run` decides for itself (it refuses to start beside a live run of the same data dir).
    if ctx.invoked_subcommand != "run":
        from services.kit.runfile import apply_to_environ

        if apply_to_environ() is not None:
            get_settings.cache_clear()


@app.command()
def run(
    data_dir: Annotated[
        Path, typer.Option(envvar="KEEPWELL_DATA_DIR", help="Embedded servers' data.")
    ] = Path(".keepwell"),
    demo_customers: Annotated[
        int, typer.Option(envvar="KEEPWELL_DEMO_CUSTOMERS", help="Demo data on first start.")
    ] = 500,
) -> None:
    """Run the whole system: services, gateway and workers (embedded PostgreSQL and Redis
    unless DATABASE_URL / REDIS_URL are set)."""
    from keepwell.run import run as run_system

    run_system(data_dir.resolve(), demo_customers)


@app.command()
def serve(
    process: Annotated[Process, typer.Argument(help="gateway or a service")],
    port: Annotated[int | None, typer.Option(help="Defaults to KEEPWELL_<NAME>_PORT.")] = None,
) -> None:
    """Serve one service (or the gateway) over HTTP."""
    import uvicorn

    settings = get_settings()
    target = (
        "gateway.app:create_app" if process == "gateway" else f"services.{process}.app:create_app"
    )
    uvicorn.run(
        target,
        factory=True,
        host=settings.host,
        port=port or settings.port_of(str(process)),
        log_config=None,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(
    service: Annotated[
        list[Service], typer.Argument(help="Services whose queues this process works.")
    ],
) -> None:
    """Run arq workers: one service's (as in production), or several in one process."""
    from keepwell.workers import run_workers

    run_workers([str(s) for s in service])


@app.command()
def migrate(
    service: Annotated[list[Service] | None, typer.Option(help="Only these services.")] = None,
) -> None:
    """Apply every service's migrations (or only the named services')."""
    import migrations

    chosen = tuple(str(s) for s in service) if service else SERVICES
    migrations.upgrade(get_settings().database_url, chosen)
    typer.echo(f"migrated: {', '.join(chosen)}")


@app.command()
def makemigration(
    service: Annotated[Service, typer.Argument()],
    message: Annotated[str, typer.Option("-m", "--message")],
) -> None:
    """Autogenerate a migration for one service from its models (database must be at head)."""
    import migrations

    migrations.revision(get_settings().database_url, str(service), message)


@app.command()
def seed(
    customers: Annotated[int, typer.Option(help="How many demo customers.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 7,
) -> None:
    """Load realistic demo data: teams, managers, customers, 120 days of usage and their
    billing, complaints."""
    from keepwell.seed import load_demo

    counts = asyncio.run(load_demo(get_settings(), customers, seed))
    for what, count in counts.items():
        typer.echo(f"{what}: {count}")


@app.command()
def token(
    role: Annotated[str, typer.Option(help="admin, supervisor, manager, operator or partner")],
    user: Annotated[str, typer.Option(help="Acting user id.")] = "cli",
    team: Annotated[str | None, typer.Option(help="Team id, for managers and supervisors.")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print an internal token for operators' scripts (Authorization: Bearer ...), signed
    with the user key (KEEPWELL_USER_SIGNING_KEY; in development the one under the data
    dir)."""
    from services.kit.auth import Principal, Role, issue_token

    try:
        principal = Principal(user_id=user, role=Role(role), team_id=team)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from exc
    typer.echo(issue_token(principal, get_settings(), ttl_seconds=ttl))


@app.command()
def keygen(
    signer: Annotated[str, typer.Argument(help="user (gateway, keepwell token), relay or rebuild")],
) -> None:
    """Print a new Ed25519 key pair for one signer of internal tokens, as environment lines:
    the signing key goes to that signer alone, the public key to every process."""
    from services.kit.keys import Signer, generate

    try:
        which = Signer(signer)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown signer {signer!r}", param_hint="SIGNER") from exc
    private, public = generate()
    typer.echo(f"KEEPWELL_{which.value.upper()}_SIGNING_KEY={private}")
    typer.echo(f"KEEPWELL_{which.value.upper()}_PUBLIC_KEY={public}")


@app.command("env")
def env_command() -> None:
    """Print `export` lines that point other tools (psql, scripts) at the running system:
    `eval "$(keepwell env)"`."""
    import shlex

    from services.care.config import get_care_settings
    from services.kit.runfile import live_run

    settings = get_settings()
    values = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KEEPWELL_DATA_DIR": str(settings.data_dir.resolve()),
        "KEEPWELL_GATEWAY_URL": f"http://{settings.host}:{settings.gateway_port}",
        **{f"KEEPWELL_{s.upper()}_URL": settings.url_of(s) for s in SERVICES},
        "CARE_SANDBOX_URL": get_care_settings().sandbox_url,
    }
    if live_run(settings.data_dir) is None:
        typer.echo(
            f"# no running `keepwell run` under {settings.data_dir}: these are the configured "
            "defaults (start the system with `make run`)",
            err=True,
        )
    for name, value in values.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@events.command("dead")
def events_dead(
    service: Annotated[list[Service] | None, typer.Option(help="Only these producers.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many per producer.")] = 100,
) -> None:
    """List deliveries that failed too often and wait for an operator."""
    from rich.console import Console
    from rich.table import Table

    from services.kit.events.admin import list_deliveries
    from services.kit.events.tables import DeliveryStatus

    chosen = [str(s) for s in service] if service else list(SERVICES)

    async def fetch() -> list[Any]:
        async with _session() as session:
            found = []
            for producer in chosen:
                found += await list_deliveries(
                    session, producer, status=DeliveryStatus.dead, limit=limit
                )
            return found

    dead = asyncio.run(fetch())
    table = Table(title=f"{len(dead)} dead deliveries")
    for column in ("id", "event type", "aggregate", "subscriber", "attempts", "last error"):
        table.add_column(column)
    for d in dead:
        table.add_row(
            d.id, d.event_type, d.aggregate_id, d.subscriber, str(d.attempts), d.last_error or ""
        )
    Console().print(table)


@events.command("replay")
def events_replay(
    delivery: Annotated[str, typer.Argument(help="A delivery id as listed, e.g. profile:42")],
) -> None:
    """Deliver an event again (the relay picks it up within seconds)."""
    from services.kit.errors import DomainError
    from services.kit.events.admin import parse_delivery_ref, replay

    try:
        producer, number = parse_delivery_ref(delivery)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="DELIVERY") from exc
    if producer not in SERVICES:
        raise typer.BadParameter(f"unknown service {producer!r}", param_hint="DELIVERY")

    async def run_replay() -> str:
        async with _session() as session:
            return (await replay(session, producer, number)).status

    try:
        status = asyncio.run(run_replay())
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{delivery}: {status}")


@events.command("catalogue")
def events_catalogue() -> None:
    """Print every event type with its producer, consumers and payload (Markdown)."""
    from services.kit.events.catalogue import catalogue_markdown

    typer.echo(catalogue_markdown())


@asynccontextmanager
async def _session() -> AsyncIterator[Any]:
    """A unit of work on the configured database, for operator commands."""
    from services.kit.db import create_engine, create_sessionmaker, session_scope

    engine = create_engine(get_settings().database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def _register_plugins() -> None:
    """Services add their own commands (``services/<service>/cli.py``: ``register(app,
    imports)``) and benchmarks live in ``keepwell/bench/<name>.py`` (``register(bench)``;
    a ``_name.py`` there holds a benchmark's body and is not registered). Such modules
    import only typer at module level, so every command starts fast."""
    import pkgutil
    from importlib.util import find_spec

    import keepwell.bench

    for service in SERVICES:
        if find_spec(f"services.{service}.cli") is not None:
            importlib.import_module(f"services.{service}.cli").register(app, imports)
    for module in pkgutil.iter_modules(keepwell.bench.__path__):
        if module.name.startswith("_"):  # a benchmark's body, imported when it runs
            continue
        importlib.import_module(f"keepwell.bench.{module.name}").register(bench)


_register_plugins()


def main() -> None:
    """The console entry point: a command that cannot reach the database, Redis or a
    service says so in one line (``--debug``, anywhere on the line, shows the traceback)."""
    import sys

    debug = "--debug" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--debug"]
    try:
        app(args=args, prog_name="keepwell")
    except Exception as exc:
        from keepwell.unreachable import explain

        line = None if debug else explain(exc)
        if line is None:
            raise
        typer.echo(line, err=True)
        raise SystemExit(1) from None
