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

from services.kit.config import SERVICES, get_settings
from services.kit.events.model import Event, event_types

CONTRACT_MODULE = "services.{}.contract"
GATEWAY_CONTRACT = "gateway.live.contract"
"""The gateway subscribes too (live updates): ``CONSUMES`` in a module as plain as a
service's contract. It takes deliveries only where ``KEEPWELL_GATEWAY_URL`` says where
it runs (:func:`configured`)."""

# Subscribers that are not services (a test harness's probe consumer), added in-process.
_extra: dict[str, frozenset[str]] = {}


@cache
def contracts() -> dict[str, ModuleType]:
    """Each service's contract module, by service name."""
    return {s: importlib.import_module(CONTRACT_MODULE.format(s)) for s in SERVICES}


def consumes() -> dict[str, frozenset[str]]:
    """The event types each subscriber consumes, by subscriber name."""
    declared = {name: frozenset(module.CONSUMES) for name, module in contracts().items()}
    declared["gateway"] = frozenset(importlib.import_module(GATEWAY_CONTRACT).CONSUMES)
    return declared | _extra


def configured(subscriber: str) -> bool:
    """Whether deliveries are made to ``subscriber``: every service always; the gateway
    where its address is configured."""
    return subscriber != "gateway" or get_settings().gateway_url is not None


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
