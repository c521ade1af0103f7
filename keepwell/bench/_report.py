"""What every benchmark prints, and how it runs and fails.

Each ``keepwell bench NAME`` prints one JSON document whose first keys are the same for
all: ``bench``, ``quick``, ``headline`` and ``comparison`` (each ``{name, value, unit}``),
``ratio`` (headline / comparison), ``duplicates`` and ``lost`` (its correctness figures:
0 when all is well, null where the benchmark has nothing to count), ``machine`` (cores,
PostgreSQL version, load), ``database`` and ``wall_seconds`` (setup included); its own
detailed figures follow. A benchmark that cannot run exits non-zero with one line,
``error: ...`` (``--debug`` shows the traceback).

Typer and the standard library only at module level: every benchmark's command module
imports this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

# Typer vendors click (typer._click): its usage errors are these classes, not click's.
from typer._click.core import Context
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from keepwell.bench._scratch import BenchFailed, Scratch, machine, scratch

QUICK_HELP = "Small sizes (each option's --quick value): a smoke check, not a measurement."


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    unit: str


@dataclass
class Result:
    headline: Figure
    comparison: Figure | None
    details: dict[str, Any]
    duplicates: int | None = None
    """Work done twice that should have been done once (0 when correct)."""
    lost: int | None = None
    """Work that should have been done and was not (0 when correct)."""
    database: str | None = field(default=None)
    """Overrides the scratch's own description (a benchmark against a running system)."""


def document(
    name: str, result: Result, found: Scratch, quick: bool, seconds: float
) -> dict[str, Any]:
    h, c = result.headline, result.comparison
    ratio = (
        round(h.value / c.value, 2)
        if c is not None and h.value is not None and c.value not in (None, 0)
        else None
    )
    common: dict[str, Any] = {
        "bench": name,
        "quick": quick,
        "headline": asdict(h),
        "comparison": asdict(c) if c is not None else None,
        "ratio": ratio,
        "duplicates": result.duplicates,
        "lost": result.lost,
        "machine": machine(found),
        "database": result.database or found.database,
        "wall_seconds": round(seconds, 1),
    }
    clashing = set(common) & set(result.details)
    if clashing:
        raise AssertionError(f"bench {name}: details repeat common keys {sorted(clashing)}")
    return common | result.details


def run_bench(
    name: str,
    body: Callable[[Scratch], Awaitable[Result]],
    *,
    quick: bool,
    database: bool = True,
    redis: bool = False,
) -> None:
    """Run ``body`` on scratch servers (a new database, an embedded Redis if asked) and
    print its document; any failure becomes one line (:class:`BenchFailed`)."""
    import asyncio
    import json
    import signal
    import time

    from keepwell.compiled import compile_sources

    # The processes a benchmark starts would each compile our modules again otherwise
    # (PYTHONDONTWRITEBYTECODE, as on many CI images), and that cost would be measured.
    compile_sources()
    kept: list[Path] = []

    async def measure() -> dict[str, Any]:
        # SIGTERM (`kill`, `bench all`'s timeout) stops it as Ctrl-C does: the servers and
        # processes it started are stopped and its database dropped.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        started = time.monotonic()
        async with scratch(name, database=database, redis=redis) as found:
            kept.append(found.dir)
            result = await body(found)
        return document(name, result, found, quick, time.monotonic() - started)

    try:
        printed = asyncio.run(measure())
    except asyncio.CancelledError:
        raise BenchFailed(f"bench {name}: stopped by SIGTERM", 143) from None
    except BenchFailed as exc:
        raise BenchFailed(f"bench {name}: {exc}", exc.exit_code) from exc
    except Exception as exc:
        files = f" (its files are kept in {kept[0]})" if kept else ""
        raise BenchFailed(f"bench {name}: {describe(exc)}{files}") from exc
    typer.echo(json.dumps(printed, indent=2, ensure_ascii=False))


def describe(exc: BaseException) -> str:
    """One line for an unexpected failure: what the innermost error says."""
    from keepwell.unreachable import innermost, innermost_reason

    last = innermost(exc)
    reason = innermost_reason(exc)
    if isinstance(last, RuntimeError | TimeoutError | OSError) and str(last).strip():
        return reason
    return f"{type(last).__name__}: {reason}"


def sized(quick: bool, full: dict[str, Any], small: dict[str, Any], **given: Any) -> dict[str, Any]:
    """The sizes to run with: each option given, else its default or its --quick value."""
    chosen = small if quick else full
    return {k: v if given.get(k) is None else given[k] for k, v in chosen.items()}


def size_help(what: str, key: str, full: dict[str, Any], small: dict[str, Any]) -> str:
    return f"{what} (default {full[key]:,}; --quick {small[key]:,})"


class BenchGroup(TyperGroup):
    """``keepwell bench``: a bad argument or an unknown benchmark is one line too."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise BenchFailed(f"{where}: {exc.format_message()} (see --help)", 2) from exc
