"""Redis for arq: queue names and a lazily connecting client."""

from __future__ import annotations

import dataclasses

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool


def queue_name(service: str) -> str:
    return f"keepwell:{service}"


STARTUP_CONNECT_TRIES = 60
"""A worker starting while Redis is down (restarted during an outage) waits about a
minute for it, a second apart, before it gives up; once running it waits for ever."""


def redis_settings(url: str) -> RedisSettings:
    return dataclasses.replace(RedisSettings.from_dsn(url), conn_retries=STARTUP_CONNECT_TRIES)


def create_redis(url: str, service: str) -> ArqRedis:
    """Connects on first use, so a service starts (and reports not ready) while Redis is down."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(pool, default_queue_name=queue_name(service))
