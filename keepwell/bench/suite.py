"""``keepwell bench all``: every benchmark, one after another, each in a process of its own;
one JSON document of their documents. With ``--quick`` it is the smoke check (every one at
its small sizes, a couple of minutes in all): it fails when a benchmark cannot run or counts
duplicates or lost work, and asserts nothing about speed."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.bench._report import QUICK_HELP

CHECKED = ("duplicates", "lost")
"""Correctness figures of every document: anything but 0 (or null, not counted) fails."""


def register(bench: typer.Typer) -> None:
    @bench.command("all")
    def all_benchmarks(
        quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
        timeout: Annotated[
            float | None,
            typer.Option(
                min=1, help="Seconds one benchmark may take (default 600 with --quick, else none)."
            ),
        ] = None,
    ) -> None:
        """Run every benchmark in turn (with --quick: the smoke check); prints one JSON
        document and exits 1 when one failed or reported duplicates or lost work."""
        import asyncio
        import json

        from keepwell.bench._scratch import BenchFailed, shared_server
        from keepwell.compiled import compile_sources

        compile_sources()  # once, before the benchmarks' processes import our modules
        names = [c.name for c in bench.registered_commands if c.name and c.name != "all"]
        limit = timeout if timeout is not None else (600.0 if quick else None)

        async def with_server() -> dict[str, object]:
            async with shared_server() as env:
                return await asyncio.to_thread(_run_all, names, quick, limit, env)

        try:
            summary = asyncio.run(with_server())
        except BenchFailed as exc:
            raise BenchFailed(f"bench all: {exc}", exc.exit_code) from exc
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        if summary["failed"]:
            raise typer.Exit(1)


def _run_all(
    names: list[str], quick: bool, timeout: float | None, env: dict[str, str]
) -> dict[str, object]:
    import os
    import time

    from keepwell.bench._scratch import machine

    started = time.monotonic()
    results: dict[str, object] = {}
    failed: dict[str, str] = {}
    for name in names:
        began, cpu = time.monotonic(), _children_cpu()
        typer.echo(f"bench all: {name} ...", err=True)
        document, problem = _run_one(name, quick, timeout, {**os.environ, **env})
        results[name] = document
        if problem is None:
            problem = (
                ", ".join(
                    f"{key} {document[key]}"
                    for key in CHECKED
                    if document.get(key) not in (0, None)
                )
                or None
            )
        if problem is not None:
            failed[name] = problem
        outcome = "ok" if problem is None else f"FAILED: {problem}"
        spent = f"{time.monotonic() - began:.0f} s, {_children_cpu() - cpu:.0f} s of CPU"
        typer.echo(f"bench all: {name} {outcome} ({spent})", err=True)
    found = machine(None)
    versions = [
        d.get("machine", {}).get("postgres") for d in results.values() if isinstance(d, dict)
    ]
    found["postgres"] = next((v for v in versions if v), None)
    return {
        "bench": "all",
        "quick": quick,
        "ok": not failed,
        "failed": failed,
        "machine": found,
        "wall_seconds": round(time.monotonic() - started, 1),
        "results": results,
    }


def _children_cpu() -> float:
    """CPU seconds of the processes waited for so far (a benchmark and what it waited for;
    not the embedded PostgreSQL, which runs detached)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run_one(
    name: str, quick: bool, timeout: float | None, env: dict[str, str]
) -> tuple[dict[str, object], str | None]:
    """One benchmark's document, and what went wrong (None when it ran)."""
    import json
    import signal
    import subprocess
    import sys

    from services.kit.processes import die_with_parent

    args = [sys.executable, "-m", "keepwell", "bench", name, *(["--quick"] if quick else [])]
    process = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The benchmark stops its processes and drops its database on SIGTERM.
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        problem = f"did not finish within {timeout:.0f} s"
        return {"bench": name, "error": problem}, problem
    if process.returncode != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        line = (errors or lines or [f"exited with code {process.returncode}"])[-1]
        problem = line.removeprefix("error: ").removesuffix("; --debug shows the traceback")
        return {"bench": name, "error": problem, "exit_code": process.returncode}, problem
    try:
        document = json.loads(out)
    except ValueError:
        problem = "printed no JSON document"
        return {"bench": name, "error": problem, "stdout": out[-2000:]}, problem
    return document, None
