"""The deployment files start real commands with settings that exist (no Docker here, so
this is what keeps them from drifting from the code)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

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


@cache
def service_settings(service: str) -> tuple[type[BaseSettings], ...]:
    """The settings classes a service's processes load (its ``config.py``)."""
    if importlib.util.find_spec(f"services.{service}.config") is None:
        return ()
    module = importlib.import_module(f"services.{service}.config")
    return tuple(
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__
    )


def variables(cls: type[BaseSettings], field: str) -> list[str]:
    """The environment variables a settings field is read from, first the preferred one."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [f"{cls.model_config.get('env_prefix', '')}{field}".upper()]


def variable(cls: type[BaseSettings], field: str) -> str:
    return variables(cls, field)[0]


def every_variable() -> set[str]:
    classes = [Settings, *(c for s in SERVICES for c in service_settings(s))]
    return {name for cls in classes for field in cls.model_fields for name in variables(cls, field)}


def known_variable(name: str) -> bool:
    return name in every_variable()


def required_in_production(args: list[str]) -> set[str]:
    """What a process started as ``keepwell ARGS`` must be given in production, read from
    the lists the settings' production validators check (``PRODUCTION_REQUIRES``) and the
    signing key the kind of process refuses to start without."""
    names = {variable(Settings, f) for f in Settings.PRODUCTION_REQUIRES}
    command, rest = args[0], args[1:]
    kind = "gateway" if args == ["serve", "gateway"] else command
    if kind in Settings.SIGNING_KEY_OF_PROCESS:
        names.add(variable(Settings, Settings.SIGNING_KEY_OF_PROCESS[kind]))
    services = [s for s in rest if s in SERVICES] if command in ("serve", "worker") else []
    for service in services:
        for cls in service_settings(service):
            required = getattr(cls, "PRODUCTION_REQUIRES", ())
            names |= {variable(cls, f) for f in required}
    return names


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def env_file_names(path: Path) -> set[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def k8s_process_environments() -> dict[str, tuple[list[str], set[str]]]:
    """Each container's (args, variable names it is given): its env, config maps and the
    secrets generated from ``<name>.env`` (read from the committed ``.env.example``)."""
    docs = k8s_documents()
    maps = {d["metadata"]["name"]: set(d["data"]) for d in docs if d["kind"] == "ConfigMap"}
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    secrets: dict[str, set[str]] = {}
    for generator in kustomization["secretGenerator"]:
        names: set[str] = set()
        for env in generator["envs"]:
            example = DEPLOY / "k8s" / f"{env}.example"
            assert example.exists(), f"{env} has no committed {example.name}"
            names |= env_file_names(example)
        secrets[generator["name"]] = names
    found: dict[str, tuple[list[str], set[str]]] = {}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    names |= maps[source["configMapRef"]["name"]]
                if "secretRef" in source:
                    names |= secrets[source["secretRef"]["name"]]
            found[doc["metadata"]["name"]] = (container["args"], names)
    return found


def compose_process_environments() -> dict[str, tuple[list[str], set[str]]]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return {
        name: (service["command"], set(service.get("environment", {})))
        for name, service in compose["services"].items()
        if name not in ("postgres", "redis")
    }


@pytest.mark.parametrize(
    "environments",
    [compose_process_environments, k8s_process_environments],
    ids=["compose", "kubernetes"],
)
def test_every_process_is_given_what_production_requires_of_it(environments: Any) -> None:
    found = environments()
    assert {"gateway", *SERVICES, *(f"{s}-worker" for s in SERVICES)} <= set(found)
    missing = {
        name: sorted(required_in_production(args) - given)
        for name, (args, given) in found.items()
        if required_in_production(args) - given
    }
    assert missing == {}
    unknown = {name: sorted(n for n in given if not known_variable(n)) for name, (_, given) in
               found.items() if any(not known_variable(n) for n in given)}  # fmt: skip
    assert unknown == {}


def test_the_derived_requirements_cover_keys_and_care() -> None:
    """The lists come from the settings; a check that the derivation reads them at all."""
    assert {"KEEPWELL_USER_PUBLIC_KEY", "KEEPWELL_USER_SIGNING_KEY"} <= required_in_production(
        ["serve", "gateway"]
    )
    care_worker = required_in_production(["worker", "care"])
    assert {"CARE_SMS_PROVIDER", "CARE_RECEIPT_TOKEN", "KEEPWELL_RELAY_SIGNING_KEY"} <= care_worker
    assert "KEEPWELL_USER_SIGNING_KEY" not in care_worker
    assert "CARE_RECEIPT_TOKEN" not in required_in_production(["serve", "profile"])


def test_private_keys_go_only_to_their_signers() -> None:
    for environments in (compose_process_environments(), k8s_process_environments()):
        for name, (args, given) in environments.items():
            signing = {n for n in given if n.endswith("_SIGNING_KEY")}
            expected = {n for n in required_in_production(args) if n.endswith("_SIGNING_KEY")}
            assert signing == expected, name


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
    for config in (d for d in docs if d["kind"] == "ConfigMap"):
        assert [k for k in config["data"] if not known_variable(k)] == []
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


@pytest.mark.parametrize("path", sorted((DEPLOY / "k8s").glob("*.env.example")), ids=str)
def test_no_secret_is_committed(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    assert all("CHANGE-ME" in line for line in lines if "KEY" in line or "TOKEN" in line)
    assert "deploy/k8s/*.env" in (DEPLOY.parent / ".gitignore").read_text().splitlines()
