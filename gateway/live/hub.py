"""Fan-out of live events to every gateway process, through Redis pub/sub.

The relay delivers each event to one gateway process (whichever the load balancer picks);
that process records it in its inbox and, once committed, publishes it here. Every
process's hub listens on the one channel and hands each event to the subscriptions
connected to it, so a client on any process gets each event once. Pub/sub keeps nothing:
an event published while a process is not listening (Redis down, a restart) is not sent
to that process's clients; they see it in their queries (warnings, complaints), and the
teams' staff channels, fed from the inbox's transaction, lose nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import GraphQLError
from redis.asyncio import Redis

logger = logging.getLogger("keepwell.gateway.live")

CHANNEL = "keepwell:live"
_RECENT = 10_000
"""Event ids a hub remembers, so an event published twice (a redelivery racing its first
publication) reaches a subscription once."""


@dataclass(frozen=True)
class LiveEvent:
    id: str
    type: str
    occurred_at: str
    payload: dict[str, Any]


@dataclass(eq=False)
class Listener:
    """One subscription's queue: bounded, so a client that does not read cannot grow the
    process; one that falls that far behind is ended (``overflowed``), not waited for."""

    accepts: Callable[[LiveEvent], bool]
    queue: asyncio.Queue[LiveEvent] = field(default_factory=lambda: asyncio.Queue(100))
    overflowed: bool = False


class Hub:
    def __init__(self, redis_url: str) -> None:
        # No socket timeout: a subscription waits on the connection for as long as it is
        # quiet; the health check finds a dead one.
        self.redis = Redis.from_url(redis_url, health_check_interval=30)
        self.listeners: set[Listener] = set()
        self.ready = asyncio.Event()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.received = 0
        """Messages taken from Redis, duplicates included."""
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float = 2.0) -> None:
        """Listen in the background; wait up to ``wait`` seconds for the subscription (the
        gateway serves without it, and keeps trying)."""
        self._task = asyncio.create_task(self._listen(), name="live-hub")
        with suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(CHANNEL, orjson.dumps(event.__dict__))
            await pipe.execute()

    def seen(self, event_id: str) -> bool:
        return event_id in self._recent

    @asynccontextmanager
    async def listen(self, accepts: Callable[[LiveEvent], bool]) -> AsyncIterator[Listener]:
        listener = Listener(accepts)
        self.listeners.add(listener)
        try:
            yield listener
        finally:
            self.listeners.discard(listener)

    async def _listen(self) -> None:
        pause = 0.5
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            self.ready.set()
                            pause = 0.5
                        elif message["type"] == "message":
                            self._dispatch(LiveEvent(**orjson.loads(message["data"])))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis gone: keep trying, the gateway serves meanwhile
                self.ready.clear()
                logger.warning("live updates: Redis subscription lost; retrying", exc_info=True)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)

    def _dispatch(self, event: LiveEvent) -> None:
        self.received += 1
        if event.id in self._recent:
            return
        self._recent[event.id] = None
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        for listener in list(self.listeners):
            if listener.overflowed or not listener.accepts(event):
                continue
            try:
                listener.queue.put_nowait(event)
            except asyncio.QueueFull:
                listener.overflowed = True


class Connections:
    """The process's WebSocket connections, bounded in all and per person."""

    def __init__(self, hub: Hub, most: int, per_user: int, subscriptions: int) -> None:
        self.hub = hub
        self.most = most
        self.per_user = per_user
        self.subscriptions = subscriptions
        self.by_user: dict[str, int] = {}

    def connection(self) -> Connection:
        return Connection(self)


class Connection:
    """One WebSocket connection's share: counted once signed in, its subscriptions bounded."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.hub = connections.hub
        self.user: str | None = None
        self.open = 0

    def sign_in(self, user: str) -> str | None:
        """Count the connection as ``user``'s; the reason it may not open, if any."""
        counts = self.connections.by_user
        if sum(counts.values()) >= self.connections.most:
            return "网关连接数已满，请稍后再试"
        if counts.get(user, 0) >= self.connections.per_user:
            return f"同一用户最多 {self.connections.per_user} 个订阅连接"
        counts[user] = counts.get(user, 0) + 1
        self.user = user
        return None

    def close(self) -> None:
        if self.user is not None:
            counts = self.connections.by_user
            counts[self.user] -= 1
            if counts[self.user] <= 0:
                del counts[self.user]
            self.user = None

    def open_subscription(self) -> None:
        if self.open >= self.connections.subscriptions:
            raise GraphQLError(
                f"每个连接最多 {self.connections.subscriptions} 个订阅",
                extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
            )
        self.open += 1

    def close_subscription(self) -> None:
        self.open -= 1
