"""Commands find the system `keepwell run` started (its run file), and say in one line
when they cannot reach the database, Redis or a service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.kit import runfile
from services.kit.embedded import free_port


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("KEEPWELL_")
    }
    env.update(KEEPWELL_DATA_DIR=str(data_dir), **extra)
    return env


def keepwell(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keepwell", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def record(data_dir: Path, pid: int, started: float | None, **env: str) -> None:
    runfile.write(
        data_dir,
        runfile.RunInfo(pid=pid, started=started or 0.0, data_dir=str(data_dir), env=env),
    )


def test_a_live_run_fills_only_what_the_environment_leaves_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = os.getpid()
    record(
        tmp_path,
        me,
        runfile.process_start_time(me),
        DATABASE_URL="postgresql://run/db",
        REDIS_URL="redis://run:1/0",
    )
    monkeypatch.setenv("KEEPWELL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://mine:2/0")

    assert runfile.apply_to_environ() is not None
    assert os.environ["DATABASE_URL"] == "postgresql://run/db"
    assert os.environ["REDIS_URL"] == "redis://mine:2/0"


def test_a_run_file_left_by_a_killed_run_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = runfile.process_start_time(gone.pid)
    gone.wait()
    record(tmp_path, gone.pid, started, DATABASE_URL="postgresql://stale/db")
    assert runfile.live_run(tmp_path) is None
    # The same pid with another start time (reused by a later process) is not the run either.
    me = os.getpid()
    record(tmp_path, me, (runfile.process_start_time(me) or 0) + 1)
    assert runfile.live_run(tmp_path) is None


def test_env_prints_export_lines_of_the_running_system(tmp_path: Path) -> None:
    me = os.getpid()  # this test process stands in for the supervisor
    record(
        tmp_path,
        me,
        runfile.process_start_time(me),
        DATABASE_URL="postgresql://postgres:@/keepwell?host=/tmp/x y",
        KEEPWELL_WARNING_URL="http://127.0.0.1:18002",
    )
    found = keepwell("env", env=clean_env(tmp_path))
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert "export DATABASE_URL='postgresql://postgres:@/keepwell?host=/tmp/x y'" in lines
    assert "export KEEPWELL_WARNING_URL=http://127.0.0.1:18002" in lines


def test_an_unreachable_database_is_one_line_naming_the_url_and_what_to_do(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql://postgres:secret@127.0.0.1:{port}/keepwell"
    found = keepwell("detect", env=clean_env(tmp_path, DATABASE_URL=url))
    assert found.returncode == 1
    [line] = found.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach postgresql://postgres:***@127.0.0.1:{port}/")
    assert "secret" not in line
    assert "`make run`" in line and "DATABASE_URL" in line and "--debug" in line


def test_a_stale_run_file_is_named_in_the_message(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/keepwell"
    record(tmp_path, 1, 0.5, DATABASE_URL="postgresql://stale/db")
    found = keepwell("detect", env=clean_env(tmp_path, DATABASE_URL=url))
    assert "pid 1, has stopped" in found.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/keepwell"
    found = keepwell("detect", "--debug", env=clean_env(tmp_path, DATABASE_URL=url))
    assert found.returncode == 1
    assert "Traceback" in found.stderr or "─ Traceback" in found.stderr
    assert "cannot reach" not in found.stderr


def test_an_unreachable_service_names_its_url_variable(tmp_path: Path) -> None:
    profile = f"http://127.0.0.1:{free_port()}"
    found = keepwell(
        "warning",
        "rebuild-customers",
        env=clean_env(tmp_path, KEEPWELL_PROFILE_URL=profile),
    )
    [line] = found.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach {profile}/customers")
    assert "KEEPWELL_PROFILE_URL" in line


def test_run_refuses_to_start_beside_a_live_run_of_the_same_data_dir(tmp_path: Path) -> None:
    me = os.getpid()  # this test process stands in for the running supervisor
    record(tmp_path, me, runfile.process_start_time(me))
    found = keepwell("run", env=clean_env(tmp_path))
    assert found.returncode == 1
    assert f"already running on {tmp_path} (pid {me})" in " ".join(found.stderr.split())
    assert not (tmp_path / "postgres").exists()  # nothing was started


def test_a_benchmark_whose_database_server_is_unreachable_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql://postgres:secret@127.0.0.1:{port}/keepwell"
    found = keepwell("bench", "events", "--quick", env=clean_env(tmp_path, DATABASE_URL=url))
    assert found.returncode == 1
    [line] = found.stderr.strip().splitlines()
    assert line.startswith(
        "error: bench events: cannot create a scratch database on DATABASE_URL's server "
        f"postgresql://postgres:***@127.0.0.1:{port}/keepwell"
    )
    assert "unset DATABASE_URL" in line and "secret" not in line
    assert found.stdout == ""


def test_a_bad_benchmark_argument_is_one_line(tmp_path: Path) -> None:
    for args in (["campaign", "--recipients", "0"], ["campaign", "--recipients", "many"], ["x"]):
        found = keepwell("bench", *args, env=clean_env(tmp_path))
        assert found.returncode == 2, found.stderr
        [line] = found.stderr.strip().splitlines()
        assert line.startswith("error: keepwell bench"), line


def test_a_benchmark_never_takes_the_running_systems_servers(tmp_path: Path) -> None:
    me = os.getpid()  # this test process stands in for the running supervisor
    running = f"postgresql://postgres@127.0.0.1:{free_port()}/keepwell"
    record(tmp_path, me, runfile.process_start_time(me), DATABASE_URL=running)
    # The server `bench all` would hand down: unreachable, so the bench stops at once.
    shared = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    found = keepwell("bench", "events", env=clean_env(tmp_path, KEEPWELL_BENCH_POSTGRES_URL=shared))
    assert found.returncode == 1
    assert f"embedded {shared}" in found.stderr
    assert running not in found.stderr


def test_imports_off_a_terminal_end_with_a_plain_summary_line(infra: Any, tmp_path: Path) -> None:
    env = clean_env(tmp_path, DATABASE_URL=infra.database_url, REDIS_URL=infra.redis_url)
    examples = Path(__file__).resolve().parents[2] / "examples"
    for what, file in (("usage", "usage-2026-12-01.csv"), ("customers", "customers.csv")):
        found = keepwell("import", what, str(examples / file), env=env)
        assert found.returncode in (0, 2), found.stderr  # 2: customers with bad rows
        assert "\x1b[" not in found.stderr and "━" not in found.stderr  # no bar drawn
        summary = [line for line in found.stderr.splitlines() if line.startswith(f"{file}: ")]
        assert len(summary) == 1, found.stderr
        assert re.fullmatch(
            rf"{re.escape(file)}: \d+ rows \([\d.]+ k?B\) in [\d.]+ s, [\d,]+ rows/s", summary[0]
        ), summary[0]
