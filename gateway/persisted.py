"""Persisted queries: operations sent by their SHA-256 instead of their text.

Automatic persisted queries (APQ, as Apollo's clients speak it, over GET and POST): a
request carrying ``extensions.persistedQuery {version: 1, sha256Hash}`` and no query runs
the query stored under that hash, or is answered ``PersistedQueryNotFound`` (code
``PERSISTED_QUERY_NOT_FOUND``, HTTP 200: the client then sends hash and query); hash and
query together must match (else 400 ``PERSISTED_QUERY_HASH_MISMATCH``), and the query is
stored in Redis for ``apq_ttl_seconds`` once it has passed the limits and validation, so
the store holds only operations that ran.

The safelist ("trusted documents", ``KEEPWELL_GATEWAY_SAFELIST``, on in production): only
operations an app build registered (``keepwell gateway register-operations``, table
``gateway.operation``) run, by hash alone or by their exact text; anything else is refused
with ``OPERATION_NOT_SAFELISTED`` (400). Partners' keys write their own queries and are
held to it only with ``KEEPWELL_GATEWAY_SAFELIST_PARTNERS``. Registered operations are
looked up by primary key and kept in a bounded in-process cache (a hash names one text
for ever, so a cached one is never stale); an unknown hash is remembered as unknown for a
few seconds, so a newly registered operation runs within that time.

Either way the text that runs goes through the same bounded parse and validation caches
(gateway/schema.py) as any other, so a repeated operation skips both.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.http import GraphQLRequestData

from gateway.config import GatewaySettings
from gateway.http import Rejection
from gateway.models import Operation
from services.kit.db import session_scope

logger = logging.getLogger("keepwell.gateway.persisted")

APQ_PREFIX = "keepwell:gateway:apq:"
SHA256 = re.compile(r"[0-9a-f]{64}")
UNKNOWN_FOR_SECONDS = 5.0
"""How long an unregistered hash is taken as unknown before the database is asked again."""
KNOWN_FOR_SECONDS = 3600.0
"""How long a process answers an APQ hash from its own cache before asking Redis again."""
LOG_EVERY = 60.0


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Lru:
    """A bounded map, least recently used out first; entries may expire."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[str | None, float | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, str | None]:
        """(found, value); an expired entry is not found."""
        item = self._items.get(key)
        if item is None:
            return False, None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._items[key]
            return False, None
        self._items.move_to_end(key)
        return True, value

    def put(self, key: str, value: str | None, ttl: float | None = None) -> None:
        """Keep ``value`` for ``ttl`` seconds (``None``: until pushed out)."""
        self._items[key] = (value, None if ttl is None else time.monotonic() + ttl)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class Safelist:
    """The registered operations, as one gateway process sees them."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], size: int = 2048) -> None:
        self.sessionmaker = sessionmaker
        self._cache = _Lru(size)

    async def get(self, sha: str) -> str | None:
        found, body = self._cache.get(sha)
        if found:
            return body
        try:
            async with session_scope(self.sessionmaker) as session:
                row = await session.get(Operation, sha)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("safelist unavailable: %s: %s", type(exc).__name__, exc)
            message = "暂时无法核对已登记的操作，请稍后重试"
            raise Rejection(503, message, "SAFELIST_UNAVAILABLE") from exc
        body = row.body if row is not None else None
        self._cache.put(sha, body, None if body is not None else UNKNOWN_FOR_SECONDS)
        return body


@dataclass(frozen=True)
class Resolved:
    """The request as it runs: its query filled in from the hash when it came without."""

    data: GraphQLRequestData
    remember: str | None = None
    """APQ: the hash to store the query under once it has run."""
    registered: bool = False
    """Its text is the safelist's (the metrics then label it by its name)."""


class PersistedQueries:
    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        gateway: GatewaySettings,
        production: bool,
    ) -> None:
        self.redis = redis
        self.apq = gateway.apq
        self.ttl = gateway.apq_ttl_seconds
        self.safelist_on = production if gateway.safelist is None else gateway.safelist
        self.safelist_partners = gateway.safelist_partners
        self.safelist = Safelist(sessionmaker)
        self._known = _Lru(1024)
        """APQ queries this process stored or read lately (a hash names one text for ever)."""
        self._logged_at = -LOG_EVERY

    def applies_to(self, partner: bool) -> bool:
        return self.safelist_on and (self.safelist_partners or not partner)

    async def resolve(self, data: GraphQLRequestData, partner: bool) -> Resolved:
        sha = _persisted_hash(data.extensions)
        query = data.query or None
        if sha is not None and query is not None and sha256_hex(query) != sha:
            raise Rejection(
                400, "persistedQuery.sha256Hash 与查询文本不符", "PERSISTED_QUERY_HASH_MISMATCH"
            )
        if self.applies_to(partner):
            if sha is None and query is None:
                return Resolved(data)  # strawberry answers that the query is missing
            body = await self.safelist.get(sha or sha256_hex(query or ""))
            if body is None:
                raise Rejection(
                    400,
                    "此操作未登记，不能执行（keepwell gateway register-operations）",
                    "OPERATION_NOT_SAFELISTED",
                )
            return Resolved(replace(data, query=body), registered=True)
        if sha is None:
            return Resolved(data)
        if query is not None:
            return Resolved(data, remember=sha if self.apq else None)
        if not self.apq:
            raise Rejection(400, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        body = await self._stored(sha)
        if body is None:
            # Apollo's clients expect this answer with 200, then send hash and query.
            raise Rejection(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return Resolved(replace(data, query=body))

    async def remember(self, sha: str, query: str) -> None:
        # Written every time (a client sends the query only after PersistedQueryNotFound),
        # so a key that expired in Redis is stored again for every replica.
        try:
            await self.redis.set(APQ_PREFIX + sha, query, ex=self.ttl)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._known.put(sha, query, KNOWN_FOR_SECONDS)

    async def _stored(self, sha: str) -> str | None:
        found, body = self._known.get(sha)
        if found:
            return body
        try:
            raw = await self.redis.get(APQ_PREFIX + sha)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None  # the client sends the query again, and it runs
        if raw is None:
            return None
        body = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._known.put(sha, body, KNOWN_FOR_SECONDS)
        return body

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            logger.warning(
                "persisted queries: Redis did not answer (%s: %s); hashes are answered "
                "PersistedQueryNotFound until it does",
                type(exc).__name__,
                exc,
            )


def _persisted_hash(extensions: dict[str, Any] | None) -> str | None:
    """The ``sha256Hash`` of ``extensions.persistedQuery`` (lowercase), if there is one."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise Rejection(
            400, "persistedQuery：只支持 version 1", "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not SHA256.fullmatch(sha.lower()):
        raise Rejection(400, "persistedQuery.sha256Hash：须为 64 位十六进制 SHA-256", "BAD_REQUEST")
    return sha.lower()
