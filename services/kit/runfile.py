"""Where a running ``keepwell run`` listens, for the commands started beside it.

The supervisor writes ``<data dir>/run.json`` once its servers are up (the embedded ones'
URLs included, which change at every start) and removes it when it stops. Commands run in
another terminal take their database, Redis and service URLs from it when the environment
does not set them (``apply_to_environ``). A run that was killed leaves the file behind: it
names the supervisor's pid and that process's start time, so a file whose process is gone
(or whose pid now belongs to another process) is stale and ignored.

Standard library only: every ``keepwell`` command reads this before anything else.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunInfo:
    pid: int
    started: float
    """The supervisor's start time as the kernel reports it (``process_start_time``)."""
    data_dir: str
    env: dict[str, str] = field(default_factory=dict)
    """What a command needs to reach this run: DATABASE_URL, REDIS_URL, service URLs..."""
    state: str = "starting"
    """``starting`` until every service answers its readiness check, then ``ready``."""


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if there
    is no such process. Two processes with the same pid never share a start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return float(fields[19])  # field 22, starttime


def run_file(data_dir: Path) -> Path:
    return data_dir / RUN_FILE


def write(data_dir: Path, info: RunInfo) -> None:
    """Write atomically, readable by the owner only (the URLs may carry a password)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".run-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f, indent=2)
    os.replace(tmp, run_file(data_dir))


def remove(data_dir: Path, pid: int) -> None:
    """Remove the file if it is still this run's (a newer run may have replaced it)."""
    found = read(data_dir)
    if found is not None and found.pid == pid:
        run_file(data_dir).unlink(missing_ok=True)


def read(data_dir: Path) -> RunInfo | None:
    try:
        raw = json.loads(run_file(data_dir).read_text())
        return RunInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None


def is_live(info: RunInfo) -> bool:
    return process_start_time(info.pid) == info.started


def live_run(data_dir: Path) -> RunInfo | None:
    """The run recorded under ``data_dir`` if its supervisor is still running."""
    info = read(data_dir)
    return info if info is not None and is_live(info) else None


def data_dir_from_environ() -> Path:
    return Path(os.environ.get("KEEPWELL_DATA_DIR") or ".keepwell")


def apply_to_environ() -> RunInfo | None:
    """Fill what the environment leaves unset from the live run, if there is one.

    Only absent variables are set, so ``DATABASE_URL=... keepwell detect`` still goes where
    it is told. Returns the run used (None when there is none, or its file is stale)."""
    info = live_run(data_dir_from_environ())
    if info is None:
        return None
    for name, value in info.env.items():
        os.environ.setdefault(name, value)
    return info
