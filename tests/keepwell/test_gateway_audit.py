"""`keepwell gateway audit`: what it reports of the graphql-http audits, and that a machine
without Node.js is told so instead of passing silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keepwell.audit import Result, failures, report


def test_without_node_it_fails_saying_what_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPWELL_")}
    env.update(PATH=str(tmp_path), KEEPWELL_DATA_DIR=str(tmp_path))
    ran = subprocess.run(
        [sys.executable, "-m", "keepwell", "gateway", "audit", "--url", "http://127.0.0.1:9/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2
    assert ran.stderr.startswith("error: ")
    assert "Node.js" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


def result(name: str, status: str = "ok", reason: str | None = None) -> Result:
    return Result(id=name[:4], name=name, status=status, reason=reason)


def test_a_must_or_should_not_met_fails_and_a_may_does_not() -> None:
    may = result("MAY accept GET", "notice", "Response status code is not 200")
    should = result("SHOULD use 400 on parse failure", "warn", "status 200")
    assert failures([result("MUST accept POST"), may]) == []
    assert failures([result("MUST accept POST"), may, should]) == [should]
    assert failures([result("MUST accept json", "error", "no")]) != []


def test_the_report_lists_what_did_not_pass_and_the_totals_per_level() -> None:
    results = [
        result("MUST accept POST"),
        result("SHOULD accept */*"),
        result("MAY accept GET", "notice", "Response status code is not 200"),
        result("MAY NOT allow mutations on GET"),
    ]
    assert report(results) == [
        "notice MAY  MAY accept GET: Response status code is not 200",
        "MUST 1/1, SHOULD 1/1, MAY 1/2",
    ]
