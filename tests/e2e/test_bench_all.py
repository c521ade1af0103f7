"""`keepwell bench all --quick`, the benchmarks' smoke check: every benchmark runs at its
quick size on a server of the test session and counts no duplicates and no lost work. No
speed is asserted here (a shared 2-core machine says little about speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.kit.testing import Infra

pytestmark = [pytest.mark.e2e, pytest.mark.once]

BENCHMARKS = {"campaign", "chaos", "complaints", "detect", "events", "gateway", "import-customers"}
COMMON = ("bench", "quick", "headline", "comparison", "ratio", "duplicates", "lost", "machine")


def test_every_benchmark_runs_at_its_quick_size_and_loses_nothing(
    infra: Infra, tmp_path: Path
) -> None:
    # Nothing of the session but its PostgreSQL server: each benchmark makes a database
    # of its own there, and an embedded Redis of its own.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("KEEPWELL_")
    }
    env.update(DATABASE_URL=infra.database_url, KEEPWELL_DATA_DIR=str(tmp_path / "data"))
    found = subprocess.run(
        [sys.executable, "-m", "keepwell", "bench", "all", "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,  # seven benchmarks, the chaos one with eight processes of its own
        check=False,
    )
    assert found.returncode == 0, found.stderr[-4000:]
    summary = json.loads(found.stdout)
    assert summary["ok"] is True and summary["failed"] == {}
    assert set(summary["results"]) == BENCHMARKS
    for name, document in summary["results"].items():
        assert document["bench"] == name
        assert all(key in document for key in COMMON), (name, sorted(document))
        assert document["quick"] is True
        assert document["headline"]["value"] is not None, name
        assert document["comparison"] is not None and document["ratio"] is not None, name
        assert document["duplicates"] in (0, None), (name, document["duplicates"])
        assert document["lost"] == 0, (name, document["lost"])
        assert document["machine"]["cores"] and document["machine"]["postgres"], name
        assert document["database"] == "DATABASE_URL's server", name
