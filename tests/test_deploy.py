"""The deployment files start real commands with settings that exist (no Docker here, so
this is what keeps them from drifting from the code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from keepwell.cli import app
from services.kit.config import DEFAULT_PORTS, SERVICES, Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMMAND = typer.main.get_command(app)


def assert_runs(args: list[str]) -> None:
    """``args`` parse as a keepwell command line (without running it)."""
    group: Any = COMMAND  # typer's own click: a group resolves its subcommands
    with group.make_context("keepwell", list(args), resilient_parsing=False) as ctx:
        name, command, rest = group.resolve_command(ctx, list(args))
        assert command is not None, f"unknown command {args}"
        command.make_context(name or "", list(rest), parent=ctx)


def known_variable(name: str) -> bool:
    if name in ("DATABASE_URL", "REDIS_URL"):
        return True
    field = name.removeprefix("KEEPWELL_").lower()
    return name.startswith("KEEPWELL_") and field in Settings.model_fields


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_compose_runs_every_process_with_known_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = {n: s["command"] for n, s in compose["services"].items() if "command" in s}
    for name in ("gateway", *SERVICES):
        assert commands[name] == ["serve", name]
    for name in SERVICES:
        assert commands[f"{name}-worker"] == ["worker", name]
    for name, args in commands.items():
        if name not in ("redis",):
            assert_runs(args)
    env = compose["x-keepwell"]["environment"]
    unknown = [k for k in env if not known_variable(k)]
    assert unknown == []


def test_kubernetes_deploys_every_process_with_probes_on_real_ports() -> None:
    docs = k8s_documents()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"gateway", *SERVICES, *(f"{s}-worker" for s in SERVICES)}
    for name, port in DEFAULT_PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["serve", name]
        assert container["ports"][0]["containerPort"] == port
        ready = container["readinessProbe"]["httpGet"]["path"]
        assert ready == ("/healthz" if name == "gateway" else "/readyz")
    for d in deployments.values():
        assert_runs(d["spec"]["template"]["spec"]["containers"][0]["args"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert [k for k in config["data"] if not known_variable(k)] == []
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


@pytest.mark.parametrize("name", ["secret.env.example"])
def test_no_secret_is_committed(name: str) -> None:
    assert "CHANGE-ME" in (DEPLOY / "k8s" / name).read_text()
    assert (
        not (DEPLOY / "k8s" / "secret.env").exists()
        or "secret.env" in (DEPLOY.parent / ".gitignore").read_text()
    )
