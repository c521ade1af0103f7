"""The ``keepwell`` command: run, serve, migrate, seed and operate the system."""

from __future__ import annotations

import asyncio
import importlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from services.kit.config import SERVICES, get_settings

app = typer.Typer(help="Keepwell: VIP customer retention backend.", no_args_is_help=True)
imports = typer.Typer(help="Bulk imports (CSV or JSON lines), idempotent.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks; each prints one JSON document.", no_args_is_help=True)
app.add_typer(imports, name="import")
app.add_typer(bench, name="bench")

Service = StrEnum("Service", {s: s for s in SERVICES})  # type: ignore[misc]
Process = StrEnum("Process", {s: s for s in ("gateway", *SERVICES)})  # type: ignore[misc]


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
def worker(service: Annotated[Service, typer.Argument()]) -> None:
    """Run one service's arq worker."""
    from arq import run_worker

    module = importlib.import_module(f"services.{service}.worker")
    run_worker(module.WorkerSettings)


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
    """Load realistic demo data: teams, managers, customers and 90 days of usage."""
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
    """Print an internal token for operators' scripts (Authorization: Bearer ...)."""
    from services.kit.auth import Principal, Role, issue_token

    try:
        principal = Principal(user_id=user, role=Role(role), team_id=team)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from exc
    typer.echo(issue_token(principal, get_settings(), ttl_seconds=ttl))


def _register_plugins() -> None:
    """Services add their own commands (``services/<service>/cli.py``: ``register(app,
    imports)``) and benchmarks live in ``keepwell/bench/<name>.py`` (``register(bench)``).
    Such modules import only typer at module level, so every command starts fast."""
    import pkgutil
    from importlib.util import find_spec

    import keepwell.bench

    for service in SERVICES:
        if find_spec(f"services.{service}.cli") is not None:
            importlib.import_module(f"services.{service}.cli").register(app, imports)
    for module in pkgutil.iter_modules(keepwell.bench.__path__):
        importlib.import_module(f"keepwell.bench.{module.name}").register(bench)


_register_plugins()
