"""A system of real processes on servers of its own, to break on purpose.

``keepwell bench chaos`` and the fault-injection tests (tests/e2e/test_faults.py) run the
services, workers and the SMS sandbox as production does, each its own ``keepwell``
process, on an embedded PostgreSQL and Redis that belong to this system alone: stopping
them hurts nobody else (the benchmark, which never stops PostgreSQL, runs on the scratch
database every benchmark gets instead). Any process can be SIGKILLed and started again with the same
command, ports and environment, and PostgreSQL or Redis stopped and started again on the
same address, so every client's URL stays valid.

The kill kinds the benchmark draws from, and the process each means here: ``worker`` is
care's worker (dispatching the campaign), ``relay`` profile's worker (relaying profile's
events to the consumers), ``service`` care's service (taking the sandbox's receipts and
the customer events), ``redis`` the Redis server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.kit import clock
from services.kit.config import Settings
from services.kit.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from services.kit.processes import die_with_parent

CONSUMERS = ("warning", "care", "complaint")
"""The services that keep a copy of profile's customers, fed by its events."""
KILLABLE = {"worker": "care-worker", "relay": "profile-worker", "service": "care"}


async def until(
    condition: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    watched: Iterable[subprocess.Popen[bytes]] = (),
    every: float = 0.2,
) -> None:
    """Wait for ``condition``; fail at once if a process it waits on has exited."""
    deadline = time.monotonic() + within
    while not await condition():
        for process in watched:
            if process.poll() is not None:
                raise RuntimeError(
                    f"waiting for {what}: a process exited with code {process.returncode}"
                )
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


async def answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``keepwell ARGS`` as a child that dies with us, its output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "keepwell", *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


@dataclass
class Process:
    """One ``keepwell`` child, restartable with the same command and environment."""

    name: str
    args: list[str]
    ready_url: str
    """Answers 200 once the process works: a service's /readyz, a worker's metrics."""
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self.popen = spawn(self.args, env, self.log)

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class System:
    dir: Path
    postgres: EmbeddedPostgres | None
    """The system's own server, or None on a database it was given (never stopped then)."""
    redis: EmbeddedRedis
    database_url: str
    env: dict[str, str]
    settings: Settings
    """What the children run with, for this process's own calls (tokens, URLs)."""
    processes: dict[str, Process] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.settings.url_of(service)

    @property
    def sandbox_url(self) -> str:
        return self.env["CARE_SANDBOX_URL"]

    def popens(self) -> list[subprocess.Popen[bytes]]:
        return [p.popen for p in self.processes.values() if p.popen is not None]

    async def wait_ready(self, names: Iterable[str] | None = None, within: float = 180) -> None:
        chosen = [self.processes[n] for n in (names or self.processes)]
        async with httpx.AsyncClient(timeout=2) as client:
            for process in chosen:
                watched = [process.popen] if process.popen is not None else []
                await until(
                    lambda p=process: answers(client, p.ready_url),  # type: ignore[misc]
                    within,
                    f"{process.name} to be ready (log: {process.log})",
                    watched,
                )

    async def kill(self, name: str) -> None:
        """SIGKILL ``name`` (a process, or ``redis``)."""
        if name == "redis":
            self.redis.process.kill()
            await asyncio.to_thread(self.redis.process.wait)
        else:
            await asyncio.to_thread(self.processes[name].kill)

    async def restart(self, name: str) -> None:
        """Start ``name`` again after a kill or a stop, as it was."""
        if name == "redis":
            await asyncio.to_thread(self.redis.restart)
        elif name == "postgres":
            assert self.postgres is not None, "a PostgreSQL of the system's own"
            await asyncio.to_thread(self.postgres.resume)
        else:
            self.processes[name].start(self.env)

    async def stop_server(self, name: str) -> None:
        """Stop PostgreSQL or Redis cleanly, as an outage or maintenance would."""
        if name == "postgres":
            assert self.postgres is not None, "a PostgreSQL of the system's own"
            await asyncio.to_thread(self.postgres.halt)
        else:
            await asyncio.to_thread(self.redis.stop)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def system_env(directory: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """Everything the children need, nothing taken from the shell's system: ports of their
    own, development keys of their own, quick recovery settings."""
    from services.kit import keys
    from services.kit.keys import Signer

    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KEEPWELL_ENV": "development",
        "KEEPWELL_DATA_DIR": str(directory / "data"),
        "KEEPWELL_LOG_LEVEL": "WARNING",
        "KEEPWELL_HOST": "127.0.0.1",
        "KEEPWELL_WORKER_METRICS_BASE_PORT": str(free_port()),
        # A killed relay's claims come back after this, not two minutes.
        "KEEPWELL_RELAY_LEASE_SECONDS": "10",
        "CARE_SANDBOX_URL": f"http://127.0.0.1:{free_port()}",
        "CARE_BATCH_SIZE": "100",
        "CARE_LEASE_SECONDS": "6",
        "CARE_REDRIVE_EVERY_SECONDS": "1",
        "CARE_STALL_SECONDS": "2",
        # Aliyun's records settle in minutes; the sandbox's at once.
        "CARE_ALIYUN_LOOKUP_SETTLES_SECONDS": "0",
        # Dispatch at any hour: quiet hours have tests of their own.
        "CARE_QUIET_START_HOUR": "0",
        "CARE_QUIET_END_HOUR": "0",
    }
    for name in ("gateway", "profile", "warning", "care", "complaint"):
        env[f"KEEPWELL_{name.upper()}_PORT"] = str(free_port())
    for signer in Signer:
        private, public = keys.generate()
        env[f"KEEPWELL_{signer.value.upper()}_SIGNING_KEY"] = private
        env[f"KEEPWELL_{signer.value.upper()}_PUBLIC_KEY"] = public
    for variable in ("PROFILE_URL", "WARNING_URL", "CARE_URL", "COMPLAINT_URL"):
        env[f"KEEPWELL_{variable}"] = ""  # derived from the ports, never the shell's
    return env


async def start_system(
    directory: Path,
    *,
    database_url: str | None = None,
    services: Sequence[str],
    workers: Sequence[str],
    sandbox: bool = True,
    extra_env: dict[str, str] | None = None,
) -> System:
    """A Redis of the system's own and a PostgreSQL of its own too unless ``database_url``
    names an empty database to use (one that will not be stopped), every schema migrated,
    then the processes (services and sandbox first, workers once the services answer, as
    ``keepwell run`` does); returns once all are ready. The caller stops it:
    :func:`stop_system`."""
    import migrations
    from services.kit.embedded import ensure_database

    postgres = None
    if database_url is None:
        postgres = await asyncio.to_thread(EmbeddedPostgres.start, directory / "postgres")
    try:
        redis = await asyncio.to_thread(EmbeddedRedis.start, directory / "redis")
    except BaseException:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
        raise
    if postgres is not None:
        database_url = await ensure_database(postgres.url, "keepwell")
    assert database_url is not None
    env = system_env(directory, database_url, redis.url) | (extra_env or {})
    settings = Settings.model_validate(
        {
            k.removeprefix("KEEPWELL_").lower(): v
            for k, v in env.items()
            if k.startswith("KEEPWELL_")
        }
        | {"DATABASE_URL": database_url, "REDIS_URL": redis.url}
    )
    system = System(directory, postgres, redis, database_url, env, settings)
    try:
        await asyncio.to_thread(migrations.upgrade, database_url)
        logs = directory / "logs"
        logs.mkdir(exist_ok=True)
        first: list[str] = []
        if sandbox:
            care = settings.url_of("care")
            port = env["CARE_SANDBOX_URL"].rsplit(":", 1)[1]
            args = ["care", "sandbox", "--port", port]
            args += ["--receipt-url", f"{care}/sms/receipts/sandbox"]
            system.processes["sandbox"] = Process(
                "sandbox", args, f"{env['CARE_SANDBOX_URL']}/healthz", logs / "sandbox.log"
            )
            first.append("sandbox")
        for service in services:
            system.processes[service] = Process(
                service,
                ["serve", service],
                f"{settings.url_of(service)}/readyz",
                logs / f"{service}.log",
            )
            first.append(service)
        for name in first:
            system.processes[name].start(env)
        await system.wait_ready(first)
        for service in workers:
            name = f"{service}-worker"
            metrics = f"http://127.0.0.1:{settings.worker_metrics_port(service)}/"
            system.processes[name] = Process(
                name, ["worker", service], metrics, logs / f"{name}.log"
            )
            system.processes[name].start(env)
        await system.wait_ready([f"{s}-worker" for s in workers])
    except BaseException:
        await stop_system(system)
        raise
    return system


async def stop_system(system: System) -> None:
    await asyncio.to_thread(system.stop)
    await asyncio.to_thread(system.redis.stop)
    if system.postgres is not None:
        await asyncio.to_thread(system.postgres.stop)


def token(system: System, role: str = "operator", user: str = "chaos") -> str:
    from services.kit.auth import Principal, Role, issue_token

    return issue_token(Principal(user_id=user, role=Role(role)), system.settings)


# -- the campaign ---------------------------------------------------------------------------


async def load_care_customers(database_url: str, numbers: Sequence[str]) -> None:
    """Customers straight into care's copy (what profile's events would have put there):
    a campaign's audience without a profile import first."""
    from datetime import date
    from decimal import Decimal

    from services.kit.bulk import copy_rows, raw_connection

    now = clock.now()
    columns = [
        "msisdn", "version", "name", "gender", "honorific", "birthday", "region", "city",
        "time_zone", "join_date", "status", "tier", "service_level", "lifecycle", "manager_id",
        "manager_name", "team_id", "balance", "sms_opt_out", "do_not_disturb", "taboos", "tags",
        "interests", "important_dates", "custom", "updated_at",
    ]  # fmt: skip
    rows = (
        (
            msisdn, 1, "客户" + str(i % 1000), "female" if i % 2 else "male", "",
            date(1980, 1 + i % 12, 1 + i % 28), "广东", "深圳", "Asia/Shanghai",
            date(2015, 1, 1), "active", "gold", "B", "maturity", f"m{i % 200}", "李经理",
            f"t{i % 20}", Decimal("88.00"), False, False, "[]", "[]", "[]", "[]", "{}", now,
        )
        for i, msisdn in enumerate(numbers)
    )  # fmt: skip
    async with raw_connection(database_url) as conn:
        await copy_rows(conn, "care", "customer", columns, rows)
        await conn.execute("ANALYZE care.customer")


async def approve_campaign(system: System, name: str, **audience: Any) -> str:
    """A campaign created and approved over care's API, as people do: its id."""
    async with httpx.AsyncClient(base_url=system.url("care"), timeout=60) as client:
        author = {"Authorization": f"Bearer {token(system, 'admin', 'author')}"}
        created = await client.post(
            "/campaigns",
            json={
                "name": name,
                "template": "{honorific}您好，{manager_name}提醒您：本周六网络维护。",
                "category": "alert",
                "audience": audience,
            },
            headers=author,
        )
        created.raise_for_status()
        campaign = str(created.json()["id"])
        (await client.post(f"/campaigns/{campaign}/preview", headers=author)).raise_for_status()
        approver = {"Authorization": f"Bearer {token(system, 'admin', 'approver')}"}
        approved = await client.post(f"/campaigns/{campaign}/approve", headers=approver)
        approved.raise_for_status()
    return campaign


async def reset_sandbox(system: System, **control: Any) -> None:
    """Forget what the sandbox sent, and set ``control``; it keeps pushing receipts to care."""
    async with httpx.AsyncClient(base_url=system.sandbox_url, timeout=10) as client:
        kept = (await client.get("/control")).json()
        await client.post("/reset")
        pushing = {k: kept[k] for k in ("receipt_url", "receipt_token")}
        (await client.post("/control", json=pushing | control)).raise_for_status()


async def campaign_outcome(system: System, campaign: str) -> dict[str, Any]:
    """What the sandbox got and what care recorded of one campaign, side by side."""
    import asyncpg

    from services.kit.db import libpq_url

    async with httpx.AsyncClient(base_url=system.sandbox_url, timeout=30) as client:
        stats = (await client.get("/stats")).json()
        sent: list[str] = []
        while batch := (await client.get("/messages", params={"offset": len(sent)})).json():
            sent += [m["phone"] for m in batch]
    conn = await asyncpg.connect(libpq_url(system.database_url))
    try:
        rows = await conn.fetch(
            "SELECT msisdn, state FROM care.recipient WHERE campaign_id = $1", campaign
        )
        status = await conn.fetchval("SELECT status FROM care.campaign WHERE id = $1", campaign)
    finally:
        await conn.close()
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    eligible = {r["msisdn"] for r in rows if r["state"] not in ("suppressed", "control")}
    return {
        "status": status,
        "eligible": eligible,
        "sent": sent,
        "states": states,
        "duplicates": int(stats["duplicates"]),
        "lost": len(eligible - set(sent)),
    }


# -- the event stream -----------------------------------------------------------------------

IMPORT_COLUMNS = "msisdn,name,gender,region,city,join_date,plan_name,plan_fee,balance,tier"


def import_body(numbers: Sequence[str]) -> str:
    lines = [IMPORT_COLUMNS]
    lines += [
        f"{n},客户{i % 1000},{'female' if i % 2 else 'male'},广东,广州,2015-01-01,"
        f"全球通188,188.00,100.00,gold"
        for i, n in enumerate(numbers)
    ]
    return "\n".join(lines) + "\n"


async def import_customers(
    system: System, numbers: Sequence[str], key: str, within: float = 300
) -> None:
    """One batch into profile over its import route, retried with the same Idempotency-Key
    while profile (or its database) is away, as a feed's uploader would: done once."""
    body = import_body(numbers)
    headers = {
        "Authorization": f"Bearer {token(system)}",
        "Content-Type": "text/csv",
        "Idempotency-Key": key,
    }
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=system.url("profile"), timeout=60) as client:
        while True:
            try:
                answer = await client.post("/customers/import", content=body, headers=headers)
                if answer.status_code < 500 and answer.status_code != 409:
                    answer.raise_for_status()
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"profile did not take import {key}")
            await asyncio.sleep(0.5)


async def event_outcome(system: System, numbers: Sequence[str]) -> dict[str, Any]:
    """Of profile's events about ``numbers``: how many each consumer applied (its inbox
    holds an event once, written with its effect), which never reached it, and which of
    the numbers its customer copy lacks."""
    import asyncpg

    from services.kit.db import libpq_url

    conn = await asyncpg.connect(libpq_url(system.database_url))
    try:
        events = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM profile.outbox WHERE aggregate_id = ANY($1::text[])", numbers
            )
        }
        outcome: dict[str, Any] = {"events": len(events)}
        for consumer in CONSUMERS:
            applied = await conn.fetch(
                f"SELECT event_id, count(*) AS n FROM {consumer}.inbox"
                " WHERE event_id = ANY($1::uuid[]) GROUP BY event_id",
                list(events),
            )
            copied = await conn.fetchval(
                f"SELECT count(*) FROM {consumer}.customer WHERE msisdn = ANY($1::text[])",
                numbers,
            )
            outcome[consumer] = {
                "applied": len(applied),
                "applied_twice": sum(1 for r in applied if r["n"] > 1),
                "never_applied": len(events) - len(applied),
                "missing_customers": len(numbers) - int(copied),
            }
        outcome["dead"] = await conn.fetchval(
            "SELECT count(*) FROM profile.delivery WHERE status = 'dead'"
        )
    finally:
        await conn.close()
    return outcome


def numbers_from(start: int, count: int) -> list[str]:
    return [str(start + i) for i in range(count)]
