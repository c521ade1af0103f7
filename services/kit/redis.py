"""Redis for arq: queue names and a lazily connecting client."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool


def queue_name(service: str) -> str:
    return f"keepwell:{service}"


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def create_redis(url: str, service: str) -> ArqRedis:
    """Connects on first use, so a service starts (and reports not ready) while Redis is down."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(pool, default_queue_name=queue_name(service))
