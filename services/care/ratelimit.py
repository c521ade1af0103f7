"""A token bucket in Redis: one send rate per provider account, shared by every worker."""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis

# Refill from Redis's own clock (so workers' clocks do not matter), then take ``want``
# tokens if there are enough; otherwise answer how many milliseconds to wait.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(data[1]) or burst
local at = tonumber(data[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= want then
  tokens = tokens - want
else
  wait = math.ceil((want - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"""


class TokenBucket:
    """``rate`` tokens per second with a burst of one second's worth; rate 0 = unlimited."""

    def __init__(self, redis: ArqRedis, key: str, rate: float) -> None:
        self.redis = redis
        self.key = key
        self.rate = rate
        self.burst = max(rate, 1.0)

    async def acquire(self, n: int) -> None:
        if self.rate <= 0:
            return
        remaining = n
        while remaining > 0:
            want = min(remaining, int(self.burst))
            wait_ms = int(
                await self.redis.eval(  # type: ignore[misc]
                    _TAKE, 1, self.key, str(self.rate), str(self.burst), str(want)
                )
            )
            if wait_ms == 0:
                remaining -= want
            else:
                await asyncio.sleep(wait_ms / 1000)
