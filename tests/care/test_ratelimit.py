"""The provider's send rate is one token bucket in Redis, shared by every worker."""

from __future__ import annotations

from services.care.ratelimit import _TAKE, TokenBucket
from services.kit.app import Resources


async def test_a_full_bucket_gives_one_seconds_worth_then_makes_callers_wait(
    resources: Resources,
) -> None:
    first = TokenBucket(resources.redis, "care:rate:test", rate=50)
    other_worker = TokenBucket(resources.redis, "care:rate:test", rate=50)

    await first.acquire(50)  # the burst: one second's worth, at once

    wait_ms = int(await resources.redis.eval(_TAKE, 1, "care:rate:test", "50", "50", "25"))  # type: ignore[misc]
    assert 0 < wait_ms <= 500  # 25 more tokens take half a second at 50/s
    await other_worker.acquire(0)


async def test_rate_zero_means_unthrottled(resources: Resources) -> None:
    bucket = TokenBucket(resources.redis, "care:rate:none", rate=0)
    await bucket.acquire(1_000_000)
    assert await resources.redis.exists("care:rate:none") == 0
