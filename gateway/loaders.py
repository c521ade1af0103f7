"""Per-request DataLoaders: every nested field asks a loader, which batches the keys of one
tick into one call to the service's batch form (``?msisdn=A&msisdn=B``) and remembers the
answers, built into their GraphQL types, for the rest of the request. A page of 50
customers with their managers, warnings, risk and complaints costs one call per service
and loader, whatever the page size."""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

if TYPE_CHECKING:
    from gateway.types.care import CareMessage, CareTask
    from gateway.types.complaint import Complaint, Sla
    from gateway.types.profile import Customer, Manager, Team
    from gateway.types.warning import ChurnWarning, RiskScore

from gateway.clients.base import Caller, ServiceClient

MAX_KEYS = 100
"""What the services' batch forms take per call."""

Row = dict[str, Any]


def _shape(name: str) -> Callable[[], type[Any]]:
    """The strawberry type ``module.Name`` under ``gateway/types/``, imported when first
    built (the types import the context, which imports these loaders)."""
    module, _, type_name = name.rpartition(".")

    @cache
    def shape() -> type[Any]:
        found: type[Any] = getattr(importlib.import_module(f"gateway.types.{module}"), type_name)
        return found

    return shape


def _build(shape: Callable[[], type[Any]], row: Row) -> Any:
    from gateway.types.common import build

    return build(shape(), row)


def _one_each(
    fetch: Callable[[list[str]], Awaitable[list[Row]]], key: str, shape: str
) -> Callable[[list[str]], Awaitable[Sequence[Any]]]:
    kind = _shape(shape)

    async def load(keys: list[str]) -> Sequence[Any]:
        found = {str(row[key]): row for row in await fetch(keys)}
        return [_build(kind, found[k]) if k in found else None for k in keys]

    return load


def _grouped(
    fetch: Callable[[list[str]], Awaitable[list[Row]]], key: str, shape: str
) -> Callable[[list[str]], Awaitable[Sequence[list[Any]]]]:
    kind = _shape(shape)

    async def load(keys: list[str]) -> Sequence[list[Any]]:
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in await fetch(keys):
            groups[row[key]].append(_build(kind, row))
        return [groups.get(k, []) for k in keys]

    return load


class Loaders:
    def __init__(self, services: dict[str, ServiceClient], caller: Caller) -> None:
        profile, warning = services["profile"], services["warning"]
        complaint, care = services["complaint"], services["care"]

        def many(
            client: ServiceClient, path: str, name: str, extra: list[tuple[str, Any]], items: bool
        ) -> Callable[[list[str]], Awaitable[list[Row]]]:
            async def fetch(keys: list[str]) -> list[Row]:
                params = [*extra, *((name, k) for k in keys)]
                answer = await client.get(caller, path, params=params)
                return list(answer["items"] if items else answer)

            return fetch

        self.customer: DataLoader[str, Customer | None] = DataLoader(
            _one_each(
                many(profile, "/customers", "msisdn", [("limit", MAX_KEYS)], True),
                "msisdn",
                "profile.Customer",
            ),
            max_batch_size=MAX_KEYS,
        )
        self.manager: DataLoader[str, Manager | None] = DataLoader(
            _one_each(
                many(profile, "/managers", "id", [("include_inactive", "true")], False),
                "id",
                "profile.Manager",
            ),
            max_batch_size=MAX_KEYS,
        )
        self.team: DataLoader[str, Team | None] = DataLoader(
            _one_each(many(profile, "/teams", "id", [], False), "id", "profile.Team"),
            max_batch_size=MAX_KEYS,
        )
        # Open warnings: at most one per signal and customer, so 50 customers stay well
        # inside the service's page of 500.
        self.open_warnings: DataLoader[str, list[ChurnWarning]] = DataLoader(
            _grouped(
                many(warning, "/warnings", "msisdn", [("limit", 500)], False),
                "msisdn",
                "warning.ChurnWarning",
            ),
            max_batch_size=50,
        )
        self.risk: DataLoader[str, RiskScore | None] = DataLoader(
            _one_each(many(warning, "/risk", "msisdn", [], False), "msisdn", "warning.RiskScore"),
            max_batch_size=MAX_KEYS,
        )
        self.complaints: DataLoader[str, list[Complaint]] = DataLoader(
            _grouped(
                many(complaint, "/complaints", "msisdn", [("limit", 200)], True),
                "msisdn",
                "complaint.Complaint",
            ),
            max_batch_size=MAX_KEYS,
        )
        self.sla: DataLoader[str, Sla | None] = DataLoader(
            _one_each(
                many(complaint, "/complaints/sla", "id", [], False), "complaint_id", "complaint.Sla"
            ),
            max_batch_size=MAX_KEYS,
        )
        self.care_tasks: DataLoader[str, list[CareTask]] = DataLoader(
            _grouped(
                many(care, "/tasks", "msisdn", [("limit", 500)], False), "msisdn", "care.CareTask"
            ),
            max_batch_size=MAX_KEYS,
        )
        self.care_messages: DataLoader[str, list[CareMessage]] = DataLoader(
            _grouped(
                many(care, "/messages", "msisdn", [("limit", 500)], False),
                "msisdn",
                "care.CareMessage",
            ),
            max_batch_size=MAX_KEYS,
        )
