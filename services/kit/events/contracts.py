"""Who publishes and who consumes each event type: read from the services' contracts.

Every service has a ``contract.py``: plain data that declares the events it publishes (the
:class:`~services.kit.events.Event` subclasses defined there) and ``CONSUMES``, the event
types its consumers handle. The kernel imports no service's code; it finds those modules by
name from the configured service list, the way a framework finds its installed apps, so a
process that publishes loads the other services' contracts and nothing else of them.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from services.kit.config import SERVICES
from services.kit.events.model import Event, event_types

CONTRACT_MODULE = "services.{}.contract"

# Subscribers that are not services (a test harness's probe consumer), added in-process.
_extra: dict[str, frozenset[str]] = {}


@cache
def contracts() -> dict[str, ModuleType]:
    """Each service's contract module, by service name."""
    return {s: importlib.import_module(CONTRACT_MODULE.format(s)) for s in SERVICES}


def consumes() -> dict[str, frozenset[str]]:
    """The event types each subscriber consumes, by subscriber name."""
    declared = {name: frozenset(module.CONSUMES) for name, module in contracts().items()}
    return declared | _extra


def consumers_of(event_type: str) -> list[str]:
    return sorted(name for name, types in consumes().items() if event_type in types)


def published() -> dict[str, type[Event]]:
    """Every event type the services publish, by name."""
    contracts()
    return event_types()


def subscribe(subscriber: str, event_types: frozenset[str]) -> None:
    """Declare a consumer that has no contract module (tests and benchmarks only)."""
    _extra[subscriber] = event_types


def unsubscribe(subscriber: str) -> None:
    """Undo :func:`subscribe` (tests only)."""
    _extra.pop(subscriber, None)
