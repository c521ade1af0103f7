from __future__ import annotations

import asyncio

import strawberry
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from gateway.context import Context
from gateway.types.health import ServiceHealth


@strawberry.type
class Query:
    @strawberry.field(description="Readiness of every service, asked over HTTP just now.")
    async def health(self, info: strawberry.Info[Context, None]) -> list[ServiceHealth]:
        clients = info.context.clients.services.values()
        results = await asyncio.gather(*(c.readiness() for c in clients))
        return [ServiceHealth.from_readiness(r) for r in results]


schema = strawberry.Schema(
    query=Query,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=12),
        lambda: MaxAliasesLimiter(max_alias_count=30),
    ],
)
