"""``keepwell gateway audit``: the graphql-http project's server audits (the conformance
suite of the GraphQL-over-HTTP specification) against a running gateway.

The audits are JavaScript, so this needs Node.js 18+ and npm, which a fresh machine (Python
alone) does not have; it is a tool run by hand or in a pipeline that has them, not a test.
``tools/graphql-http-audit`` pins the suite's version in its lock file; the first run
installs it there (``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "graphql-http-audit"
LEVELS = ("MUST", "SHOULD", "MAY")


class AuditUnavailable(Exception):
    """The audit cannot run here (no Node.js, no tool folder, the suite did not install)."""


@dataclass(frozen=True)
class Result:
    id: str
    name: str
    status: str
    """``ok``; else ``error`` (a MUST failed), ``warn`` (a SHOULD) or ``notice`` (a MAY)."""
    reason: str | None

    @property
    def level(self) -> str:
        return next((word for word in LEVELS if self.name.startswith(word)), "MAY")


def run_audit(url: str, headers: list[str], tool: Path = TOOL) -> list[Result]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise AuditUnavailable(
            "the audit runs the graphql-http suite on Node.js: install Node.js 18+ and npm "
            "(apt-get install nodejs npm), then run it again"
        )
    if not (tool / "audit.mjs").is_file():
        raise AuditUnavailable(
            f"{tool} is missing: run the audit from a checkout of the repository"
        )
    if not (tool / "node_modules" / "graphql-http").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=tool, capture_output=True, text=True
        )
        if installed.returncode != 0:
            raise AuditUnavailable(f"npm ci in {tool} failed: {installed.stderr.strip()}")
    ran = subprocess.run(
        [node, "audit.mjs", url, *headers], cwd=tool, capture_output=True, text=True
    )
    if ran.returncode != 0:
        raise AuditUnavailable(f"the audit failed against {url}: {ran.stderr.strip()}")
    return [Result(**item) for item in json.loads(ran.stdout)]


def failures(results: list[Result]) -> list[Result]:
    """What the gateway must fix: a MUST or a SHOULD not met (a MAY is the server's choice)."""
    return [r for r in results if r.status != "ok" and r.level != "MAY"]


def report(results: list[Result]) -> list[str]:
    """One line per audit not passed, then the totals per level."""
    lines = [f"{r.status:<6} {r.id} {r.name}: {r.reason}" for r in results if r.status != "ok"]
    passed = Counter(r.level for r in results if r.status == "ok")
    total = Counter(r.level for r in results)
    lines.append(", ".join(f"{level} {passed[level]}/{total[level]}" for level in LEVELS))
    return lines
