"""Dependencies point one way, and services know each other only by their contracts."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import ModuleType

import grimp
import pytest

from services.kit.config import SERVICES
from services.kit.events import Event
from services.kit.events.contracts import contracts

PUBLISHED_SURFACE = ("contract",)


def published_types(contract: ModuleType) -> dict[str, type[Event]]:
    return {
        value.event_type: value
        for value in vars(contract).values()
        if isinstance(value, type)
        and issubclass(value, Event)
        and value.__module__ == contract.__name__
    }


def consumer_of(service: str) -> frozenset[str]:
    try:
        module = importlib.import_module(f"services.{service}.consumers")
    except ModuleNotFoundError:
        return frozenset()
    return module.consumer.handled_types


@pytest.mark.parametrize("service", SERVICES)
def test_a_publishing_process_loads_no_other_service_but_its_contract(service: str) -> None:
    """Import the service's app and look up the subscribers of one of its event types, as
    its first publish does: nothing of another service but its contract is loaded."""
    event_type = next(iter(published_types(contracts()[service])))
    script = (
        "import json, sys\n"
        f"import services.{service}.app\n"
        "from services.kit.events.publish import service_subscribers\n"
        f"service_subscribers({event_type!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('services.'))))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
    )
    allowed = {f"services.{other}" for other in SERVICES} | {
        f"services.{other}.{part}" for other in SERVICES for part in PUBLISHED_SURFACE
    }
    foreign = [m for m in loaded if m.split(".")[1] not in (service, "kit") and m not in allowed]
    assert foreign == []


def test_every_consumed_type_is_published_and_declared_where_it_is_handled() -> None:
    published = {
        name: service
        for service, contract in contracts().items()
        for name in published_types(contract)
    }
    for service, contract in contracts().items():
        assert consumer_of(service) == contract.CONSUMES, service
        assert set(contract.CONSUMES) <= set(published), service
        for name, cls in published_types(contract).items():
            assert cls.producer == service, name


def test_contracts_import_only_the_kernel_and_other_contracts() -> None:
    graph = grimp.build_graph("services")
    for service in SERVICES:
        module = f"services.{service}.contract"
        imported = graph.find_modules_directly_imported_by(module)
        assert all(m.startswith("services.kit") or m.endswith(".contract") for m in imported), (
            module,
            sorted(imported),
        )


def test_the_kernel_imports_no_service_and_nothing_above_it() -> None:
    graph = grimp.build_graph("services", "keepwell", "gateway")
    kit = {m for m in graph.modules if m.startswith("services.kit")}
    outside = {
        imported
        for module in kit
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("services.kit")
    }
    assert outside == set()
