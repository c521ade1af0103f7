"""Rate limits: a token bucket per caller in Redis, shared by every gateway replica and
charged by what each operation costs (the cost ``gateway/limits.py`` measures), not by the
number of requests.

Each caller has one bucket: a person by user id, a partner by API key, a caller without
either by client address. A bucket holds one minute's worth of its rate and refills
continuously; an operation takes its cost (at least ``rate_min_cost``; one costlier than
the whole bucket needs a full bucket and empties it). Taking is one Lua script, so
concurrent requests on any replica cannot overdraw a bucket, and it reads Redis's own
clock (``TIME``), so the replicas' clocks do not matter; a test passes a clock of its own
instead. Keys expire once their bucket would be full again.

Every charged answer carries ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (IETF
draft names; seconds until the bucket is full) and ``RateLimit-Policy``; a refusal is
HTTP 429 with ``Retry-After`` and a GraphQL error ``RATE_LIMITED`` saying when to retry.

Redis not answering must not take the gateway down: the limits then fail open (the request
runs unlimited), with a log line and ``keepwell_gateway_rate_limit_unavailable_total``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from graphql import GraphQLError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from strawberry.extensions import SchemaExtension

logger = logging.getLogger("keepwell.gateway.ratelimit")

KEY_PREFIX = "keepwell:gateway:rate:"
WINDOW_SECONDS = 60
"""A bucket holds, and refills in, one minute's worth of its rate."""
PAUSE_AFTER_FAILURE = 1.0
"""Seconds the limits stay open after Redis failed, before it is asked again."""
LOG_EVERY = 60.0

REFUSED = Counter(
    "keepwell_gateway_rate_limited_total",
    "Operations refused by the gateway's rate limits, by kind of caller",
    ["caller"],
)
UNAVAILABLE = Counter(
    "keepwell_gateway_rate_limit_unavailable_total",
    "Operations let through unlimited because Redis did not answer the rate limits",
)

# KEYS[1] the bucket; ARGV: capacity, refill per second, cost, now (seconds; empty: Redis's
# clock). Returns {allowed, tokens left, seconds until `cost` fits, seconds until full}.
# Numbers go back as strings: Redis would truncate Lua's floats to integers.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
local wait = 0
-- Within a millionth of a token it fits: refill in floating point may fall just short.
if tokens >= cost - 0.000001 then
  tokens = math.max(0, tokens - cost)
  allowed = 1
else
  wait = (cost - tokens) / rate
end
local full = (capacity - tokens) / rate
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(full) + 1)
return {allowed, tostring(tokens), tostring(wait), tostring(full)}
"""


@dataclass(frozen=True)
class Decision:
    """What the bucket said about one charge."""

    allowed: bool
    limit: int
    """The bucket's size: cost per minute."""
    remaining: int
    reset: int
    """Seconds until the bucket is full again."""
    retry_after: int
    """Refused: seconds until this operation's cost fits; allowed: 0."""
    charged: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_SECONDS}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """The buckets of one gateway process, over its Redis client."""

    def __init__(
        self, redis: Redis, min_cost: int = 1, clock: Callable[[], float] | None = None
    ) -> None:
        self.redis = redis
        self.min_cost = min_cost
        self.clock = clock
        """Seconds, for tests; ``None``: Redis's own clock (one for every replica)."""
        self._take = redis.register_script(_TAKE)
        self._open_until = 0.0
        self._logged_at = -LOG_EVERY

    def meter(self, kind: str, subject: str, per_minute: int) -> Meter:
        return Meter(self, kind, f"{KEY_PREFIX}{kind}:{subject}", per_minute)

    async def take(self, key: str, per_minute: int, cost: int) -> Decision | None:
        """Charge ``cost`` to the bucket at ``key``; ``None`` when Redis did not answer."""
        if time.monotonic() < self._open_until:
            UNAVAILABLE.inc()
            return None
        charged = min(max(cost, self.min_cost), per_minute)
        now = "" if self.clock is None else f"{self.clock():.6f}"
        try:
            allowed, tokens, wait, full = await self._take(
                keys=[key], args=[per_minute, per_minute / WINDOW_SECONDS, charged, now]
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        return Decision(
            allowed=bool(allowed),
            limit=per_minute,
            remaining=max(0, math.floor(_seconds(tokens))),
            reset=math.ceil(_seconds(full)),
            retry_after=0 if allowed else max(1, math.ceil(_seconds(wait))),
            charged=charged,
        )

    def _failed(self, exc: Exception) -> None:
        UNAVAILABLE.inc()
        now = time.monotonic()
        self._open_until = now + PAUSE_AFTER_FAILURE
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            logger.warning(
                "rate limits not enforced: Redis did not answer (%s: %s); letting requests "
                "through until it does",
                type(exc).__name__,
                exc,
            )


def _seconds(value: bytes | str) -> float:
    """A figure of the script, to the microsecond (10 / (100 / 60) is 6, not 6.0000001)."""
    return round(float(value), 6)


@dataclass(frozen=True)
class Meter:
    """One caller's bucket, as a request sees it."""

    limiter: RateLimiter
    kind: str
    """user, partner or anonymous."""
    key: str
    per_minute: int

    async def charge(self, cost: int) -> Decision | None:
        decision = await self.limiter.take(self.key, self.per_minute, cost)
        if decision is not None and not decision.allowed:
            REFUSED.labels(self.kind).inc()
        return decision


def refusal(decision: Decision) -> GraphQLError:
    return GraphQLError(
        f"请求过于频繁：本次代价 {decision.charged}，剩余额度 {decision.remaining}，"
        f"请 {decision.retry_after} 秒后重试",
        extensions={
            "code": "RATE_LIMITED",
            "retryAfter": decision.retry_after,
            "cost": decision.charged,
            "limit": decision.limit,
            "remaining": decision.remaining,
        },
    )


class RateLimit(SchemaExtension):
    """Charges the caller's bucket (the context's ``rate``) with the operation's cost (the
    context's ``cost``) once the limits and validation let it through, before it runs;
    puts the budget in the response's headers and, when the bucket is short, refuses it
    (429, ``Retry-After``)."""

    async def on_validate(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        meter = getattr(context, "rate", None)
        if isinstance(meter, Meter) and not execution.pre_execution_errors:
            decision = await meter.charge(getattr(context, "cost", 0))
            response = getattr(context, "response", None)
            if decision is not None:
                if response is not None:
                    response.headers.update(decision.headers())
                if not decision.allowed:
                    if response is not None:
                        response.status_code = 429
                    execution.pre_execution_errors = [refusal(decision)]
        yield
