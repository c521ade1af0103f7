"""Per-request DataLoaders: every nested field asks a loader, which batches the keys of one
tick into one call to the service's batch form (``?msisdn=A&msisdn=B``) and remembers the
answers, built into their GraphQL types, for the rest of the request. A page of 50
customers with their managers, warnings, risk and complaints costs one call per service
and loader, whatever the page size.

A partner's loaders go by profile's customer id instead of the number (``?customer_id=``):
what a partner is given of a number is masked, so the gateway holds none to ask with."""

from __future__ import annotations

import asyncio
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
            groups[str(row[key])].append(_build(kind, row))
        return [groups.get(k, []) for k in keys]

    return load


class Loaders:
    def __init__(
        self, services: dict[str, ServiceClient], caller: Caller, *, by_customer_id: bool
    ) -> None:
        profile, warning = services["profile"], services["warning"]
        complaint, care = services["complaint"], services["care"]
        self.by_customer_id = by_customer_id
        """Warnings, risk and complaints are keyed by customer id (a partner), else by number."""
        customer_key = "customer_id" if by_customer_id else "msisdn"

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
        self.customer_by_id: DataLoader[str, Customer | None] = DataLoader(
            _one_each(
                many(profile, "/customers", "id", [("limit", MAX_KEYS)], True),
                "id",
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
                many(warning, "/warnings", customer_key, [("limit", 500)], False),
                customer_key,
                "warning.ChurnWarning",
            ),
            max_batch_size=50,
        )
        self.risk: DataLoader[str, RiskScore | None] = DataLoader(
            _one_each(
                many(warning, "/risk", customer_key, [], False), customer_key, "warning.RiskScore"
            ),
            max_batch_size=MAX_KEYS,
        )
        self.complaints: DataLoader[str, list[Complaint]] = DataLoader(
            _grouped(
                many(complaint, "/complaints", customer_key, [("limit", 200)], True),
                customer_key,
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

    def customer_key(self, customer: Customer) -> str:
        """What this request's warning, risk and complaint loaders take for ``customer``."""
        return str(customer.id) if self.by_customer_id else customer.msisdn

    def customer_of(self, msisdn: str, customer_id: str | None) -> Awaitable[Customer | None]:
        """The customer a warning or complaint is about: by number for people, by customer
        id for a partner (none while the service's copy lacks the id)."""
        if not self.by_customer_id:
            return self.customer.load(msisdn)
        if customer_id is not None:
            return self.customer_by_id.load(customer_id)
        unknown: asyncio.Future[Customer | None] = asyncio.get_running_loop().create_future()
        unknown.set_result(None)
        return unknown
