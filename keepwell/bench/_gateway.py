"""The body of ``keepwell bench gateway`` (kept apart so the CLI starts fast)."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from keepwell.bench._report import Figure, Result
from keepwell.bench._scratch import Scratch
from services.kit.config import SERVICES
from services.kit.embedded import free_port

CUSTOMER_360 = """
query ($msisdn: String!) {
  customer(msisdn: $msisdn) {
    msisdn name tier serviceLevel lifecycle tags
    manager { id name team { id name } }
    team { id name }
    warnings { id signal severity summary riskScore }
    riskScore { score components { signal weight summary } }
    complaints { number state severity nextDueAt breached }
    careHistory { messages { state text sentAt } tasks { kind dueOn status } }
    contactLog(first: 5) { nodes { channel outcome at note } }
    managerHistory { managerId startedAt endedAt }
  }
}
"""

WORK_QUEUE = """
{ myWorkQueue { warnings { id msisdn signal riskScore dueOn }
                careTasks { id msisdn kind dueOn }
                complaints { id number state nextDueAt } } }
"""

CUSTOMER_PAGE = """
{ customers(first: 50) { nodes { msisdn name tier manager { id name }
                                  warnings { signal severity riskScore } }
                         pageInfo { hasNextPage endCursor } } }
"""


def _env(found: Scratch, customers: int) -> dict[str, str]:
    """The environment of a system of the bench's own, on its scratch servers: nothing of a
    system this shell points at (its URLs, `eval "$(keepwell env)"`) is passed down."""
    assert found.database_url is not None and found.redis_url is not None
    sandbox = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not (
            k.startswith("KEEPWELL_")
            and (k.endswith(("_URL", "_PORT")) or k == "KEEPWELL_DATA_DIR")
        )
        and k != "CARE_SANDBOX_URL"
    }
    env.update(
        DATABASE_URL=found.database_url,
        REDIS_URL=found.redis_url,
        KEEPWELL_ENV="development",
        KEEPWELL_DATA_DIR=str(found.dir / "data"),
        KEEPWELL_DEMO_CUSTOMERS=str(customers),
        KEEPWELL_WORKER_METRICS_BASE_PORT=str(free_port()),
        CARE_SANDBOX_PORT=str(sandbox),
        CARE_SANDBOX_URL=f"http://127.0.0.1:{sandbox}",
        # One caller driven far past any app on purpose: a bucket that never runs dry, so
        # every request still pays the rate limit's round trip to Redis but none is refused.
        KEEPWELL_GATEWAY_RATE_USER_PER_MINUTE=str(10**12),
        **{f"KEEPWELL_{p.upper()}_PORT": str(free_port()) for p in ("gateway", *SERVICES)},
    )
    return env


async def _until(
    check: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    alive: Callable[[], None] | None = None,
) -> None:
    """Wait for ``check``; ``alive`` raises at once when a process it depends on has died."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            if await check():
                return
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{what} not ready within {within:.0f} s")


def _summary(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    if not latencies:
        return {"requests": 0, "errors": errors}
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 1)

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
    }


ROUNDS = 5
"""Each side runs in this many alternating rounds (by default), so a slow drift of the
machine (a background job, the demo settling) falls on both alike."""


CpuMeter = Callable[[], float | None]
"""Seconds of CPU one process has used so far (None: not known, e.g. a remote gateway)."""


def process_cpu(pid: int | None) -> CpuMeter:
    import psutil

    process = psutil.Process(pid) if pid is not None else None

    def used() -> float | None:
        if process is None:
            return None
        times = process.cpu_times()
        return float(times.user + times.system)

    return used


async def _load(
    send: Callable[[httpx.AsyncClient], Awaitable[bool]],
    concurrency: int,
    seconds: float,
    cpu: CpuMeter,
) -> tuple[list[float], int, float, float | None]:
    """(latencies, errors, elapsed seconds, CPU seconds of the side's process) of one
    round."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        # Warm as many connections as there will be requests in flight, and the caches;
        # not measured.
        await asyncio.gather(*(send(client) for _ in range(concurrency)), return_exceptions=True)
        deadline = time.monotonic() + seconds
        cpu_before = cpu()

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    ok = await send(client)
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
        cpu_after = cpu()
    spent = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return latencies, errors, elapsed, spent


async def _compare(
    sides: tuple[tuple[Callable[[httpx.AsyncClient], Awaitable[bool]], CpuMeter], ...],
    concurrency: int,
    seconds: float,
    rounds: int,
) -> list[dict[str, Any]]:
    """Each side's summary over ``rounds`` alternating rounds of ``seconds / rounds``, with
    the CPU its own process (the gateway, or the floor's app) spent per request."""
    totals: list[tuple[list[float], int, float, float | None]] = [([], 0, 0.0, 0.0) for _ in sides]
    for _ in range(rounds):
        for i, (send, cpu) in enumerate(sides):
            latencies, errors, elapsed, used = await _load(send, concurrency, seconds / rounds, cpu)
            seen, failed, spent, cpu_total = totals[i]
            cpu_total = None if used is None or cpu_total is None else cpu_total + used
            totals[i] = (seen + latencies, failed + errors, spent + elapsed, cpu_total)
    summaries = []
    for latencies, errors, elapsed, cpu_total in totals:
        summary = _summary(latencies, errors, elapsed)
        if cpu_total is not None and latencies:
            summary["process_cpu_ms_per_request"] = round(cpu_total * 1000 / len(latencies), 2)
        summaries.append(summary)
    return summaries


async def run(
    found: Scratch,
    url: str | None,
    *,
    concurrency: int,
    seconds: float,
    customers: int,
    rounds: int = ROUNDS,
) -> Result:
    scratch = found.dir
    env = _env(found, customers) if url is None else dict(os.environ)
    processes: list[subprocess.Popen[bytes]] = []
    log_file = scratch / "system.log"
    log = log_file.open("ab")
    try:
        started_here = url is None
        began = time.monotonic()
        phases: dict[str, float] = {}
        if url is None:
            processes.append(_spawn(["-m", "keepwell", "run"], env, log))
            url = f"http://127.0.0.1:{env['KEEPWELL_GATEWAY_PORT']}"
        floor_port = free_port()
        floor_env = {**env, "FLOOR_PORT": str(floor_port)}
        processes.append(_spawn(["-m", "keepwell.bench._gateway_floor"], floor_env, log))
        floor = f"http://127.0.0.1:{floor_port}"
        async with httpx.AsyncClient(timeout=5) as probe:

            def alive() -> None:
                for p in processes:
                    if p.poll() is not None:
                        raise RuntimeError(
                            f"a process exited early (code {p.returncode}); see {log_file}"
                        )

            async def ready() -> bool:
                body = (
                    await probe.post(f"{url}/graphql", json={"query": "{ health { ready } }"})
                ).json()
                return all(h["ready"] for h in body["data"]["health"])

            # A system of its own takes a while to start; a running one answers at once.
            if started_here:
                await _until(ready, 180, "the system", alive)
            else:
                await _until(ready, 10, f"the gateway at {url}", alive)
            phases["ready_seconds"] = round(time.monotonic() - began, 1)
            if started_here:
                # The demo's first days (detection over 30 days, follow-ups, care) run in
                # the background after ready: measured beside them, figures mean little.
                async def played() -> bool:
                    return await _done(log_file.read_text(errors="replace"))

                await _until(played, 300, "the demo's first days", alive)
                phases["demo_played_seconds"] = round(time.monotonic() - began, 1)
            await _until(lambda: _ok(probe.get(f"{floor}/docs")), 30, "the floor endpoints", alive)
        meters = (
            process_cpu(
                _gateway_pid(processes[0], int(env["KEEPWELL_GATEWAY_PORT"]))
                if started_here
                else None
            ),
            process_cpu(processes[-1].pid),
        )
        measured = await _measure(url, floor, env, concurrency, seconds, rounds, meters)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
    first = measured["queries"]["customer_360"]
    failed = sum(
        q[side]["errors"] for q in measured["queries"].values() for side in ("gateway", "floor")
    )
    return Result(
        headline=Figure(
            "customer_360_p50_ms", first["gateway"].get("p50_ms"), "ms through the gateway"
        ),
        comparison=Figure(
            "customer_360_floor_p50_ms", first["floor"].get("p50_ms"), "ms, the same calls by hand"
        ),
        # A request that got no right answer (an error status, or errors in the body).
        lost=failed,
        database=None if started_here else f"the running system behind {url}",
        details={**measured, "customers": customers if started_here else None, **phases},
    )


def _gateway_pid(supervisor: subprocess.Popen[bytes], port: int) -> int | None:
    """The gateway process among what ``keepwell run`` started: the one listening on its
    port (children are forked from one server, so they share its command line)."""
    import psutil

    for child in psutil.Process(supervisor.pid).children(recursive=True):
        listening = child.net_connections(kind="tcp")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in listening):
            return int(child.pid)
    return None


async def _done(text: str) -> bool:
    return "demo:" in text or "could not be played" in text


def _spawn(args: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    from services.kit.processes import die_with_parent

    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


async def _ok(response: Awaitable[httpx.Response]) -> bool:
    return (await response).status_code == 200


# p50 through the gateway over the floor's, per query: part 1's bar, and part 2's (tighter).
TARGETS = {
    "customer_360": (1.5, 1.25),
    "work_queue": (1.5, 1.25),
    "customer_page_50": (1.5, 1.4),
}


async def _measure(
    url: str,
    floor: str,
    env: dict[str, str],
    concurrency: int,
    seconds: float,
    rounds: int,
    meters: tuple[CpuMeter, CpuMeter],
) -> dict[str, Any]:
    from gateway.config import GatewaySettings
    from gateway.identity import development_token
    from services.kit.auth import Principal, Role
    from services.kit.config import Settings

    settings = Settings(data_dir=Path(env.get("KEEPWELL_DATA_DIR", ".keepwell")))
    gateway_settings = GatewaySettings()

    def bearer(role: Role, user: str, team: str | None = None) -> dict[str, str]:
        principal = Principal(user_id=user, role=role, team_id=team)
        token = development_token(principal, gateway_settings, settings, 3600)
        return {"Authorization": f"Bearer {token}"}

    operator = bearer(Role.operator, "bench")
    samples = await _samples(url, operator)
    manager = bearer(Role.manager, samples["manager"], samples["team"])
    numbers = samples["msisdns"]
    turn = [0]

    def next_number() -> str:
        turn[0] += 1
        number: str = numbers[turn[0] % len(numbers)]
        return number

    def graphql(query: str, headers: dict[str, str], variables: Callable[[], dict[str, Any]]):  # type: ignore[no-untyped-def]
        async def send(client: httpx.AsyncClient) -> bool:
            r = await client.post(
                f"{url}/graphql", json={"query": query, "variables": variables()}, headers=headers
            )
            return r.status_code == 200 and "errors" not in r.json()

        return send

    def plain(path: str, params: Callable[[], dict[str, str]]):  # type: ignore[no-untyped-def]
        async def send(client: httpx.AsyncClient) -> bool:
            return (await client.get(f"{floor}{path}", params=params())).status_code == 200

        return send

    mix = {
        "customer_360": (
            graphql(CUSTOMER_360, operator, lambda: {"msisdn": next_number()}),
            plain("/customer360", lambda: {"msisdn": next_number()}),
        ),
        "work_queue": (
            graphql(WORK_QUEUE, manager, dict),
            plain("/work-queue", lambda: {"user": samples["manager"], "team": samples["team"]}),
        ),
        "customer_page_50": (
            graphql(CUSTOMER_PAGE, operator, dict),
            plain("/customer-page", dict),
        ),
    }
    results: dict[str, Any] = {}
    for name, (through_gateway, direct) in mix.items():
        gateway_cpu, floor_cpu = meters
        g, f = await _compare(
            ((through_gateway, gateway_cpu), (direct, floor_cpu)), concurrency, seconds, rounds
        )
        ratio = round(g["p50_ms"] / f["p50_ms"], 2) if g.get("p50_ms") and f.get("p50_ms") else None
        part1, part2 = TARGETS[name]
        results[name] = {
            "gateway": g,
            "floor": f,
            "p50_ratio": ratio,
            "meets_target": ratio is not None and ratio <= part1,
            "meets_tighter_target": ratio is not None and ratio <= part2,
            "tighter_target": part2,
        }
    return {
        "concurrency": concurrency,
        "seconds_per_side": seconds,
        "rounds": rounds,
        "target": "gateway p50 <= 1.5 x floor p50, per query, at concurrency 16",
        "tighter_target": "<= 1.25 x for customer_360 and work_queue, <= 1.4 x for the page",
        "queries": results,
    }


async def _samples(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Customers to ask about and the manager with the most of them, asked of the gateway."""
    query = "{ customers(first: 100) { nodes { msisdn managerId teamId } } }"
    async with httpx.AsyncClient(timeout=30) as client:
        body = (await client.post(f"{url}/graphql", json={"query": query}, headers=headers)).json()
    nodes = body["data"]["customers"]["nodes"]
    if not nodes:
        raise RuntimeError("the system has no customers to ask about")
    load: dict[tuple[str, str], int] = {}
    for n in nodes:
        if n["managerId"] and n["teamId"]:
            key = (n["managerId"], n["teamId"])
            load[key] = load.get(key, 0) + 1
    manager, team = max(load, key=lambda k: load[k])
    return {"msisdns": [n["msisdn"] for n in nodes], "manager": manager, "team": team}
