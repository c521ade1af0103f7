"""``keepwell run``: the whole system as separate processes under one supervisor.

Starts embedded PostgreSQL and Redis when no URLs are configured and applies what
migrations are due, then the four services, the gateway and the SMS sandbox, each forked
from one server process that has imported their common libraries once (:data:`FORKS`),
while the supervisor loads demo data on a first start (they touch no table before a
request comes); the workers, whose jobs start at once and call the services, follow once
the services are ready. On a first start with demo data the demo plays its first days once
everything is ready (``keepwell/seed.py``: ``play_demo``). Where it all listens goes to
``<data dir>/run.json`` for the commands run beside it (``services/kit/runfile.py``). A
child that crashes is restarted with back-off; SIGINT or SIGTERM stops every child and the
embedded servers, and nothing is left running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

import migrations
from keepwell.compiled import compile_sources
from services.kit import runfile
from services.kit.config import SERVICES, Settings
from services.kit.embedded import EmbeddedPostgres, EmbeddedRedis
from services.kit.keys import Signer, public_key
from services.kit.processes import die_with_parent

logger = logging.getLogger("keepwell.run")
console = Console(stderr=True)

# Services that have background jobs (a ``worker.py``) get a worker process.
WORKER_SERVICES: tuple[str, ...] = tuple(
    s for s in SERVICES if importlib.util.find_spec(f"services.{s}.worker") is not None
)
STOP_GRACE_SECONDS = 10.0
RESTART_BACKOFF_MAX_SECONDS = 30.0


FORKS = multiprocessing.get_context("forkserver")
"""Children are forked from one server process that has imported, once, what every child
imports (:data:`PRELOAD`), instead of each being a new interpreter that imports it all
again: with seven processes on two cores, those imports were most of the time to ready.
The fork server is single-threaded, so forking it is safe; it exits when this process
does, even when killed."""

PRELOAD = ["services.kit.app", "services.kit.worker", "uvicorn", "strawberry", "keepwell.cli"]
"""The libraries every server and worker imports (FastAPI, SQLAlchemy, pydantic, httpx,
redis, arq, uvicorn, strawberry) and the kernel; each child imports its own service."""


@dataclass
class Child:
    name: str
    args: list[str]
    """The ``keepwell`` command the child runs, e.g. ``["serve", "profile"]``."""
    process: BaseProcess | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self) -> None:
        # Daemonic: should this process end without stopping it, the exit hook kills it.
        self.process = FORKS.Process(target=keepwell, args=(self.args,), name=self.name)
        self.process.daemon = True
        self.process.start()
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_alive()


def keepwell(args: list[str]) -> None:
    """A child's body: the ``keepwell`` command with ``args``, as ``keepwell ARGS`` would."""
    die_with_parent()  # the fork server; it goes when the supervisor goes
    from keepwell.cli import app

    app(args=args, prog_name="keepwell")


def start_fork_server() -> None:
    """Start the fork server now (it imports :data:`PRELOAD` while the supervisor goes on);
    children inherit the environment it starts with, so call it once that is complete."""
    FORKS.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()


def servers(settings: Settings) -> list[Child]:
    """The HTTP processes: safe to start before demo data is loaded (no table is read
    until a request comes, and readiness only pings the database)."""
    # The stand-in SMS operator (CARE_SMS_PROVIDER=sandbox, the default), pushing delivery
    # receipts and customers' replies back to the care service as a real operator would.
    care = settings.url_of("care")
    sandbox = ["care", "sandbox", "--receipt-url", f"{care}/sms/receipts/sandbox"]
    sandbox += ["--uplink-url", f"{care}/sms/uplinks/sandbox"]
    procs = [Child("sms-sandbox", sandbox)]
    procs += [Child(s, ["serve", s]) for s in SERVICES]
    procs.append(Child("gateway", ["serve", "gateway"]))
    return procs


def workers() -> list[Child]:
    """The workers: their jobs (relay sweeps, the SLA sweep) run at once and deliver events
    to the services, so they start after the migrations, once the services answer. One
    process for every service's queue: far quicker to start than one each."""
    return [Child("workers", ["worker", *WORKER_SERVICES])] if WORKER_SERVICES else []


def children(settings: Settings) -> list[Child]:
    return servers(settings) + workers()


def run_env(settings: Settings, data_dir: Path, infra_env: dict[str, str]) -> dict[str, str]:
    """What a command run beside this system needs to reach it (``keepwell env`` prints
    it); recorded in the run file."""
    from services.care.config import get_care_settings

    env = {**infra_env, "KEEPWELL_DATA_DIR": str(data_dir)}
    if "DATABASE_URL" not in env:
        env["DATABASE_URL"] = settings.database_url
    if "REDIS_URL" not in env:
        env["REDIS_URL"] = settings.redis_url
    env["KEEPWELL_HOST"] = settings.host
    env["KEEPWELL_GATEWAY_PORT"] = str(settings.gateway_port)
    for name in (*SERVICES, "gateway"):
        env[f"KEEPWELL_{name.upper()}_URL"] = settings.url_of(name)
    env["CARE_SANDBOX_URL"] = get_care_settings().sandbox_url
    return env


@contextmanager
def infrastructure(data_dir: Path) -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL: the configured ones, or embedded servers for the block."""
    env: dict[str, str] = {}
    with ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            console.print(f"[dim]starting embedded PostgreSQL in {data_dir / 'postgres'}[/]")
            pg = EmbeddedPostgres.start(data_dir / "postgres")
            stack.callback(pg.stop)
            env["DATABASE_URL"] = pg.database_url("keepwell")
        if not os.environ.get("REDIS_URL"):
            console.print(f"[dim]starting embedded Redis in {data_dir / 'redis'}[/]")
            rd = EmbeddedRedis.start(data_dir / "redis")
            stack.callback(rd.stop)
            env["REDIS_URL"] = rd.url
        yield env


def pause(stop: threading.Event, seconds: float) -> None:
    """Sleep a moment unless asked to stop. Not ``stop.wait(seconds)``: a timed wait on a
    lock takes an absolute deadline on the monotonic clock, which libfaketime (the tests'
    far-date runs) moves while the kernel's wait does not, so it never returns there."""
    if not stop.is_set():
        time.sleep(seconds)


def wait_ready(settings: Settings, stop: threading.Event, timeout: float = 120.0) -> bool:
    urls = {s: f"{settings.url_of(s)}/readyz" for s in SERVICES}
    urls["gateway"] = f"http://{settings.host}:{settings.gateway_port}/healthz"
    pending = dict(urls)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while pending and not stop.is_set() and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                try:
                    if client.get(url).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            pause(stop, 0.1)
    return not pending


def print_urls(settings: Settings, elapsed: float) -> None:
    table = Table(title=f"Keepwell is ready ({elapsed:.1f}s)")
    table.add_column("process")
    table.add_column("url")
    table.add_row("gateway (GraphQL)", f"http://{settings.host}:{settings.gateway_port}/graphql")
    for s in SERVICES:
        table.add_row(f"{s} (REST, /docs)", settings.url_of(s))
    from services.care.config import get_care_settings

    table.add_row("sms-sandbox (sent messages: /messages)", get_care_settings().sandbox_url)
    if WORKER_SERVICES:
        port = settings.worker_metrics_port(WORKER_SERVICES[0])
        table.add_row(
            f"workers: {', '.join(WORKER_SERVICES)} (metrics)", f"http://{settings.host}:{port}"
        )
    console.print(table)
    console.print("Press Ctrl-C to stop.")


def supervise(procs: list[Child], stop: threading.Event) -> None:
    """Restart children that exit (they were started by the caller)."""
    while not stop.is_set():
        now = time.monotonic()
        for child in procs:
            if child.running or child.process is None:
                continue
            if child.restart_at is None:
                # A child that ran a while before failing starts again after 1 s.
                child.restarts = 1 if now - child.started_at > 60 else child.restarts + 1
                delay = min(2.0 ** (child.restarts - 1), RESTART_BACKOFF_MAX_SECONDS)
                child.restart_at = now + delay
                code = child.process.exitcode
                console.print(
                    f"[red]{child.name} exited with {code}; restarting in {delay:.0f}s[/]"
                )
            elif now >= child.restart_at:
                child.start()
        pause(stop, 0.2)


def terminate(procs: list[Child]) -> None:
    running = [c for c in procs if c.running]
    for child in running:
        assert child.process is not None
        child.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in running:
        assert child.process is not None
        child.process.join(max(0.0, deadline - time.monotonic()))
        if child.process.is_alive():
            console.print(f"[yellow]{child.name} did not stop in time; killing it[/]")
            child.process.kill()
            child.process.join()


def refuse_second_run(data_dir: Path) -> None:
    live = runfile.live_run(data_dir)
    if live is not None:
        console.print(
            f"[red]keepwell is already running on {data_dir} (pid {live.pid}); stop it first "
            "or give this one another KEEPWELL_DATA_DIR[/]"
        )
        raise SystemExit(1)


def run(data_dir: Path, demo_customers: int) -> None:
    started = time.monotonic()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    data_dir.mkdir(parents=True, exist_ok=True)
    refuse_second_run(data_dir)
    compiling = threading.Thread(target=compile_sources, daemon=True)
    compiling.start()
    procs: list[Child] = []
    watcher: threading.Thread | None = None
    me = os.getpid()
    with infrastructure(data_dir) as infra_env:
        # Children find the development keys (made now, on first start) under data_dir.
        infra_env["KEEPWELL_DATA_DIR"] = str(data_dir)
        os.environ.update(infra_env)
        settings = Settings()
        # The services' relays deliver the gateway's events (live updates) to the gateway
        # this run starts, unless one is configured.
        os.environ.setdefault("KEEPWELL_GATEWAY_URL", settings.url_of("gateway"))
        settings = Settings()
        for signer in Signer:  # configured keys are used as they are; none is made then
            public_key(settings, signer)
        info = runfile.RunInfo(
            pid=me,
            started=runfile.process_start_time(me) or 0.0,
            data_dir=str(data_dir),
            env=run_env(settings, data_dir, infra_env),
        )
        runfile.write(data_dir, info)
        try:
            compiling.join()
            start_fork_server()
            # While the fork server imports. The servers start once the schema is current:
            # one that answered before would report ready with tables still missing.
            stale = migrations.behind(settings.database_url)
            if stale:
                console.print(f"[dim]applying migrations: {', '.join(stale)}[/]")
                migrations.upgrade(settings.database_url, stale)
            procs += servers(settings)
            for child in procs:
                child.start()
            first_start = asyncio.run(archive_is_empty(settings.database_url))
            if first_start:
                from keepwell.seed import load_demo

                asyncio.run(load_demo(settings, demo_customers))
                console.print(f"[dim]loaded demo data: {demo_customers} customers[/]")
            watcher = threading.Thread(target=supervise, args=(procs, stop), daemon=True)
            watcher.start()
            ready = wait_ready(settings, stop)
            # Once the services answer: a relay that found them still starting would back
            # off (2 s, 4 s, 8 s...) and hold back the read models' first fill.
            for child in workers():
                child.start()
                procs.append(child)
            if ready:
                print_urls(settings, time.monotonic() - started)
                runfile.write(data_dir, dataclasses.replace(info, state="ready"))
                in_background(settings, stop, first_start=first_start)
            elif not stop.is_set():
                console.print("[red]not every service became ready; see the logs above[/]")
            stop.wait()
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
            console.print("[dim]stopping[/]")
            terminate(procs)
            runfile.remove(data_dir, me)


async def archive_is_empty(database_url: str) -> bool:
    """A first start: profile's archive has no customer yet (demo data goes in then). Asked
    in SQL, so a later start imports none of what loading demo data needs."""
    from services.kit.bulk import raw_connection

    async with raw_connection(database_url) as conn:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM profile.customer)")


def in_background(settings: Settings, stop: threading.Event, *, first_start: bool) -> None:
    """Once ready, while the user already looks around: on a first start with demo data,
    the demo's first days (detection, follow-ups, care, campaigns) through the running
    services' own functions and jobs; on a later start, the defaults of a fresh
    installation that a newer release added (a no-op otherwise), kept off the way to ready
    because they import most of care and complaint."""

    def play() -> None:
        from keepwell.seed import install_defaults, play_demo

        try:
            if not first_start:
                asyncio.run(install_defaults(settings))
                return
            summary = asyncio.run(play_demo(settings, stop))
        except Exception:
            if not stop.is_set():
                logger.exception(
                    "the demo's first days could not be played"
                    if first_start
                    else "the defaults of a fresh installation could not be installed"
                )
            return
        if summary:
            console.print("[dim]demo: " + ", ".join(f"{k} {v}" for k, v in summary.items()) + "[/]")

    threading.Thread(target=play, name="after-ready", daemon=True).start()
