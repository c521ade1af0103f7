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

from keepwell.bench._report import BenchGroup
from services.kit.config import SCHEMAS, SERVICES, get_settings

app = typer.Typer(help="Keepwell: VIP customer retention backend.", no_args_is_help=True)
imports = typer.Typer(help="Bulk imports (CSV or JSON lines), idempotent.", no_args_is_help=True)
bench = typer.Typer(
    cls=BenchGroup,
    help="Benchmarks on scratch servers of their own; each prints one JSON document.",
    no_args_is_help=True,
)
app.add_typer(imports, name="import")
app.add_typer(bench, name="bench")
events = typer.Typer(help="Event deliveries: dead letters, replay, pruning.", no_args_is_help=True)
app.add_typer(events, name="events")

Service = StrEnum("Service", {s: s for s in SERVICES})  # type: ignore[misc]
Schema = StrEnum("Schema", {s: s for s in SCHEMAS})  # type: ignore[misc]
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
    # `run` decides for itself (it refuses to start beside a live run of the same data dir);
    # a benchmark uses scratch servers of its own, never a running system's.
    if ctx.invoked_subcommand not in ("run", "bench"):
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
    target: Any = (
        "gateway.app:create_app" if process == "gateway" else f"services.{process}.app:create_app"
    )
    if process == "gateway":
        import gc

        from gateway.app import create_app

        # What the imports made (the schema, strawberry, pydantic, SQLAlchemy: ~170,000
        # objects) lives as long as the process. Frozen, the collector no longer walks it
        # on every full collection: those came every few dozen page queries and cost
        # 2-3 ms of CPU per query, averaged, in one pause that all requests in flight wait
        # for.
        target = create_app()
        gc.collect()
        gc.freeze()
    uvicorn.run(
        target,
        factory=process != "gateway",
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
    service: Annotated[list[Schema] | None, typer.Option(help="Only these schemas.")] = None,
) -> None:
    """Apply every schema's migrations (the services' and the gateway's), or the named ones'."""
    import migrations

    chosen = tuple(str(s) for s in service) if service else SCHEMAS
    migrations.upgrade(get_settings().database_url, chosen)
    typer.echo(f"migrated: {', '.join(chosen)}")


@app.command()
def makemigration(
    service: Annotated[Schema, typer.Argument()],
    message: Annotated[str, typer.Option("-m", "--message")],
) -> None:
    """Autogenerate a migration for one schema from its models (database must be at head)."""
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
    gateway: Annotated[
        bool, typer.Option("--gateway", help="A token for the GraphQL gateway instead.")
    ] = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="A partner's scope (repeatable): customers:read, warnings:read, ..."),
    ] = None,
) -> None:
    """Print a token (Authorization: Bearer ...). For a service's REST API: an internal
    token signed with the user key (KEEPWELL_USER_SIGNING_KEY; in development the one under
    the data dir). With --gateway: a development token for the GraphQL gateway, signed with
    its HS256 secret (in production people sign in with the identity provider)."""
    from services.kit.auth import Principal, Role, Scope, issue_token

    try:
        principal = Principal(user_id=user, role=Role(role), team_id=team)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from exc
    try:
        principal = principal.model_copy(update={"scopes": frozenset(map(Scope, scope or ()))})
    except ValueError as exc:
        raise typer.BadParameter(f"unknown scope in {scope!r}", param_hint="--scope") from exc
    if gateway:
        from gateway.config import get_gateway_settings
        from gateway.identity import development_token

        typer.echo(development_token(principal, get_gateway_settings(), get_settings(), ttl))
        return
    typer.echo(issue_token(principal, get_settings(), ttl_seconds=ttl))


@app.command("export")
def export_command(
    msisdn: Annotated[
        str, typer.Argument(help="The customer's number (or an erased one's stand-in).")
    ],
    user: Annotated[str, typer.Option(help="The admin it is exported for (audited).")],
) -> None:
    """Print everything every service holds about one customer as one JSON document (the
    access right of PIPL); each service's part comes from its GET /exports/{msisdn}."""
    import json

    from keepwell.export import export_customer

    try:
        document = asyncio.run(export_customer(get_settings(), msisdn, user))
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


apikey_app = typer.Typer(help="Partners' API keys for the gateway (X-API-Key).")
app.add_typer(apikey_app, name="apikey")


async def _with_gateway_session(work: Any) -> Any:
    from services.kit.db import create_engine, create_sessionmaker, session_scope

    engine = create_engine(get_settings().database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


@apikey_app.command("create")
def apikey_create(
    partner: Annotated[str, typer.Option(help="The partner's id, e.g. bss-feed.")],
    scope: Annotated[list[str], typer.Option(help="Repeat: customers:read, usage:write, ...")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    expires_in_days: Annotated[int | None, typer.Option(help="Unset: no expiry.")] = None,
    rate: Annotated[
        int | None,
        typer.Option(help="Its rate limit, cost per minute (unset: the partners' default)."),
    ] = None,
) -> None:
    """Make a key and print it once (only its hash is kept)."""
    from datetime import timedelta

    from gateway import apikeys
    from services.kit import clock

    expires = clock.now() + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(session: Any) -> tuple[Any, str]:
        return await apikeys.create(
            session,
            partner_id=partner,
            name=name or partner,
            scopes=scope,
            created_by="cli",
            expires_at=expires,
            rate_per_minute=rate,
        )

    row, key = asyncio.run(_with_gateway_session(work))
    typer.echo(
        f"id {row.id}  partner {row.partner_id}  scopes {','.join(row.scopes)}  "
        f"rate {row.rate_per_minute or 'default'}"
    )
    typer.echo(key)


@apikey_app.command("list")
def apikey_list(partner: Annotated[str | None, typer.Option()] = None) -> None:
    """Keys, newest first (never the keys themselves)."""
    from gateway import apikeys

    rows = asyncio.run(_with_gateway_session(lambda s: apikeys.listed(s, partner)))
    for r in rows:
        state = "revoked" if r.revoked_at else "active"
        typer.echo(
            f"{r.id}  {r.partner_id}  {','.join(r.scopes)}  {state}  "
            f"rate {r.rate_per_minute or 'default'}  "
            f"expires {r.expires_at or '-'}  last used {r.last_used_at or '-'}"
        )


@apikey_app.command("set-rate")
def apikey_set_rate(
    key_id: Annotated[str, typer.Argument(help="The id `list` shows.")],
    rate: Annotated[int, typer.Argument(help="Cost per minute; 0: back to the partners' default.")],
) -> None:
    """Change a key's rate limit, from its next request on."""
    from gateway import apikeys

    row = asyncio.run(_with_gateway_session(lambda s: apikeys.set_rate(s, key_id, rate or None)))
    typer.echo(f"{row.id} ({row.partner_id}): rate {row.rate_per_minute or 'default'}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The id `list` shows.")]) -> None:
    """Revoke a key at once."""
    from gateway import apikeys

    row = asyncio.run(_with_gateway_session(lambda s: apikeys.revoke(s, key_id)))
    typer.echo(f"revoked {row.id} ({row.partner_id})")


gateway_app = typer.Typer(
    help="The gateway's safelist of operations and the teams' staff channels.",
    no_args_is_help=True,
)
app.add_typer(gateway_app, name="gateway")
channels_app = typer.Typer(
    help="Teams' staff channels: WeCom (企业微信) and DingTalk (钉钉) group robots.",
    no_args_is_help=True,
)
gateway_app.add_typer(channels_app, name="channels")


@channels_app.command("add")
def channels_add(
    team: Annotated[str, typer.Option(help="The team's id in profile, e.g. T001.")],
    kind: Annotated[str, typer.Option(help="wecom or dingtalk.")],
    name: Annotated[str, typer.Option(help="What the channel is, e.g. 一组值班群.")],
    url: Annotated[
        str | None,
        typer.Option(
            help="The robot's webhook URL (with its key or token); without it, it is asked "
            "for, so the key stays out of the shell's history."
        ),
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="DingTalk: the environment variable holding the 加签 secret (SEC...); "
            "without it the secret is asked for (Enter: none)."
        ),
    ] = None,
) -> None:
    """Add a channel: the team's notices go to it from now on."""
    import os

    from gateway.channels import manage
    from services.kit.errors import InvalidInput

    if url is None:
        url = typer.prompt("机器人 webhook 地址", hide_input=True)
    secret: str | None = None
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            raise InvalidInput(f"secret：环境变量 {secret_env} 未设置或为空", field="secret")
    elif kind == "dingtalk":
        secret = typer.prompt(
            "加签密钥（SEC...，没有则回车）", default="", hide_input=True, show_default=False
        )
    production = get_settings().env == "production"

    async def work(session: Any) -> Any:
        row = await manage.add(
            session,
            team_id=team,
            kind=kind,
            name=name,
            url=url,
            secret=secret,
            created_by="cli",
            production=production,
        )
        return (await manage.listed(session, row.team_id), row.id)

    rows, channel_id = asyncio.run(_with_gateway_session(work))
    [row] = [r for r in rows if r.id == channel_id]
    typer.echo(_channel_line(row))


@channels_app.command("list")
def channels_list(
    team: Annotated[str | None, typer.Option(help="One team's only.")] = None,
) -> None:
    """Channels by team, with their messages by status (URLs' keys masked, no secrets)."""
    from gateway.channels import manage

    for row in asyncio.run(_with_gateway_session(lambda s: manage.listed(s, team))):
        typer.echo(_channel_line(row))


def _channel_line(row: Any) -> str:
    counts = "  ".join(f"{status} {n}" for status, n in row.counts.items())
    return (
        f"{row.id}  team {row.team_id}  {row.kind}  {row.name}  "
        f"{'active' if row.active else 'inactive'}  {'signed ' if row.signed else ''}"
        f"{row.url}  {counts}"
    )


@channels_app.command("remove")
def channels_remove(
    channel_id: Annotated[int, typer.Argument(help="The id `list` shows.")],
) -> None:
    """Remove a channel with its queued messages (its URL and secret with it)."""
    from gateway.channels import manage

    row = asyncio.run(_with_gateway_session(lambda s: manage.remove(s, channel_id)))
    typer.echo(f"removed {row.id} (team {row.team_id}, {row.kind.value} {row.name})")


@channels_app.command("test")
def channels_test(
    channel_id: Annotated[int, typer.Argument(help="The id `list` shows.")],
) -> None:
    """Send a test message to a channel now and print what the robot answered."""
    from gateway.channels import manage
    from services.kit.http import create_http_client

    async def work(session: Any) -> Any:
        channel = await manage.get(session, channel_id)
        async with create_http_client(10.0) as http:
            return await manage.send_test(http, channel)

    answer = asyncio.run(_with_gateway_session(work))
    if not answer.ok:
        typer.echo(f"failed: {answer.error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"sent to channel {channel_id}")


@gateway_app.command("register-operations")
def gateway_register_operations(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="An Apollo persisted-query manifest or a .graphql"
        ),
    ],
    by: Annotated[str, typer.Option(help="Who registers (an app build, a person).")] = "cli",
) -> None:
    """Register an app build's operations for the safelist (KEEPWELL_GATEWAY_SAFELIST): each
    is checked against the schema and the limits, then runs by its hash or its exact text.
    Prints each operation's SHA-256; repeating it is harmless."""
    from gateway import operations

    found = operations.read_operations(file)
    new, known = asyncio.run(_with_gateway_session(lambda s: operations.register(s, found, by)))
    for op in found:
        typer.echo(f"{op.id}  {op.type or '-'}  {op.name or '-'}")
    typer.echo(f"registered {new} new, {known} already registered")


@gateway_app.command("audit")
def gateway_audit(
    url: Annotated[
        str | None,
        typer.Option(help="The gateway's GraphQL URL (default: this system's /graphql)."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(help="'Name: value' sent on every request, e.g. a CSRF preflight header."),
    ] = None,
) -> None:
    """Run the graphql-http project's GraphQL-over-HTTP server audits against a gateway
    (needs Node.js 18+ and npm). Lists what did not pass and the totals per level; exits 1
    when a MUST or a SHOULD is not met."""
    from keepwell.audit import AuditUnavailable, failures, report, run_audit

    settings = get_settings()
    target = url or f"http://{settings.host}:{settings.gateway_port}/graphql"
    try:
        results = run_audit(target, header or [])
    except AuditUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in report(results):
        typer.echo(line)
    if failures(results):
        raise typer.Exit(1)


schema_app = typer.Typer(help="The GraphQL schema as a contract (gateway/schema.graphql).")
app.add_typer(schema_app, name="schema")


@schema_app.command("export")
def schema_export() -> None:
    """Write the code's schema to gateway/schema.graphql."""
    from gateway.contract import SCHEMA_FILE, current_sdl

    SCHEMA_FILE.write_text(current_sdl())
    typer.echo(f"wrote {SCHEMA_FILE}")


@schema_app.command("check")
def schema_check() -> None:
    """Compare the code's schema with gateway/schema.graphql: list breaking and dangerous
    changes; exit 1 when anything would break an app built against the file."""
    from gateway.contract import SCHEMA_FILE, changes, current_sdl

    breaking, dangerous = changes(SCHEMA_FILE.read_text(), current_sdl())
    for line in breaking:
        typer.echo(f"BREAKING  {line}")
    for line in dangerous:
        typer.echo(f"dangerous {line}")
    if breaking:
        raise typer.Exit(1)
    typer.echo(
        "no breaking changes"
        if SCHEMA_FILE.read_text() == current_sdl()
        else "no breaking changes; run `keepwell schema export` to update the file"
    )


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
    from services.kit.events.admin import replay

    producer, number = _delivery_ref(delivery)

    async def run_replay() -> str:
        async with _session() as session:
            return (await replay(session, producer, number)).status

    try:
        status = asyncio.run(run_replay())
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{delivery}: {status}")


@events.command("discard")
def events_discard(
    delivery: Annotated[str, typer.Argument(help="A dead delivery as listed, e.g. profile:42")],
    reason: Annotated[str, typer.Option(help="Why it is not sent again (kept on the row).")],
) -> None:
    """Give up on a dead delivery: not sent again unless replayed; pruning may then take it."""
    import getpass

    from services.kit.errors import DomainError
    from services.kit.events.admin import discard

    producer, number = _delivery_ref(delivery)

    async def run_discard() -> str:
        async with _session() as session:
            by = f"cli:{getpass.getuser()}"
            return (await discard(session, producer, number, by=by, reason=reason)).status

    try:
        status = asyncio.run(run_discard())
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{delivery}: {status}")


def _delivery_ref(delivery: str) -> tuple[str, int]:
    from services.kit.events.admin import parse_delivery_ref

    try:
        producer, number = parse_delivery_ref(delivery)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="DELIVERY") from exc
    if producer not in SERVICES:
        raise typer.BadParameter(f"unknown service {producer!r}", param_hint="DELIVERY")
    return producer, number


@events.command("prune")
def events_prune(
    service: Annotated[
        list[Service] | None, typer.Option(help="Only these services' event tables.")
    ] = None,
    older_than_days: Annotated[
        int | None,
        typer.Option(
            help="Keep this many days (default KEEPWELL_EVENT_RETENTION_DAYS); never fewer.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete delivered events (with their deliveries and attempts) and inbox rows older
    than the retention now, in short batches, as every worker does each hour."""
    import math
    from datetime import timedelta

    from services.kit.db import create_engine, create_sessionmaker
    from services.kit.events.prune import Pruned, prune

    settings = get_settings()
    retention = settings.event_retention_days
    days = retention if older_than_days is None else older_than_days
    if days < retention:
        # The consumers accept events up to the retention old that their inbox does not
        # know: an inbox pruned sooner could let such an event be applied twice.
        raise typer.BadParameter(
            f"{days} is less than KEEPWELL_EVENT_RETENTION_DAYS ({retention}): the inboxes "
            "must remember events as long as the consumers accept them; lower the setting "
            "for every process instead",
            param_hint="--older-than-days",
        )
    chosen = [str(s) for s in service] if service else list(SERVICES)

    async def run_prune() -> list[Pruned]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            sessionmaker = create_sessionmaker(engine)
            return [
                await prune(sessionmaker, s, older_than=timedelta(days=days), max_seconds=math.inf)
                for s in chosen
            ]
        finally:
            await engine.dispose()

    for pruned in asyncio.run(run_prune()):
        typer.echo(
            f"{pruned.schema}: {pruned.events} events, {pruned.deliveries} deliveries, "
            f"{pruned.attempts} attempts, {pruned.inbox} inbox rows older than {days} days "
            f"({pruned.seconds:.1f} s)"
        )


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
    service, or is given bad input, says so in one line (``--debug``, anywhere on the line,
    shows the traceback)."""
    import sys

    debug = "--debug" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--debug"]
    try:
        app(args=args, prog_name="keepwell")
    except Exception as exc:
        from keepwell.bench._scratch import BenchFailed
        from keepwell.unreachable import explain
        from services.kit.errors import DomainError

        if isinstance(exc, BenchFailed) and not debug:
            # A benchmark that cannot run (or was given a bad argument) says why in one line.
            hint = "; --debug shows the traceback" if exc.exit_code == 1 else ""
            typer.echo(f"error: {exc}{hint}", err=True)
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, DomainError) and not debug:
            # Bad input to a command: what is wrong, as the API would say it.
            typer.echo(f"error: {exc.message}", err=True)
            raise SystemExit(2) from None
        line = None if debug else explain(exc)
        if line is None:
            raise
        typer.echo(line, err=True)
        raise SystemExit(1) from None
