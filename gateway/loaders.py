"""Per-request DataLoaders: every nested field asks a loader, which batches the keys of one
tick into one call to the service's batch form (``?msisdn=A&msisdn=B``) and remembers the
answers for the rest of the request. A page of 50 customers with their managers, warnings,
risk and complaints costs one call per service and loader, whatever the page size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.clients.base import Caller, ServiceClient

MAX_KEYS = 100
"""What the services' batch forms take per call."""

Row = dict[str, Any]


def _one_each(
    fetch: Callable[[list[str]], Awaitable[list[Row]]], key: str
) -> Callable[[list[str]], Awaitable[Sequence[Row | None]]]:
    async def load(keys: list[str]) -> Sequence[Row | None]:
        found = {str(row[key]): row for row in await fetch(keys)}
        return [found.get(k) for k in keys]

    return load


def _grouped(
    fetch: Callable[[list[str]], Awaitable[list[Row]]], key: str
) -> Callable[[list[str]], Awaitable[Sequence[list[Row]]]]:
    async def load(keys: list[str]) -> Sequence[list[Row]]:
        groups: dict[str, list[Row]] = defaultdict(list)
        for row in await fetch(keys):
            groups[row[key]].append(row)
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

        self.customer = DataLoader[str, Row | None](
            _one_each(many(profile, "/customers", "msisdn", [("limit", MAX_KEYS)], True), "msisdn"),
            max_batch_size=MAX_KEYS,
        )
        self.manager = DataLoader[str, Row | None](
            _one_each(
                many(profile, "/managers", "id", [("include_inactive", "true")], False), "id"
            ),
            max_batch_size=MAX_KEYS,
        )
        self.team = DataLoader[str, Row | None](
            _one_each(many(profile, "/teams", "id", [], False), "id"), max_batch_size=MAX_KEYS
        )
        # Open warnings: at most one per signal and customer, so 50 customers stay well
        # inside the service's page of 500.
        self.open_warnings = DataLoader[str, list[Row]](
            _grouped(many(warning, "/warnings", "msisdn", [("limit", 500)], False), "msisdn"),
            max_batch_size=50,
        )
        self.risk = DataLoader[str, Row | None](
            _one_each(many(warning, "/risk", "msisdn", [], False), "msisdn"),
            max_batch_size=MAX_KEYS,
        )
        self.complaints = DataLoader[str, list[Row]](
            _grouped(many(complaint, "/complaints", "msisdn", [("limit", 200)], True), "msisdn"),
            max_batch_size=MAX_KEYS,
        )
        self.sla = DataLoader[str, Row | None](
            _one_each(many(complaint, "/complaints/sla", "id", [], False), "complaint_id"),
            max_batch_size=MAX_KEYS,
        )
        self.care_tasks = DataLoader[str, list[Row]](
            _grouped(many(care, "/tasks", "msisdn", [("limit", 500)], False), "msisdn"),
            max_batch_size=MAX_KEYS,
        )
        self.care_messages = DataLoader[str, list[Row]](
            _grouped(many(care, "/messages", "msisdn", [("limit", 500)], False), "msisdn"),
            max_batch_size=MAX_KEYS,
        )
