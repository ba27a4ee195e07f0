"""Redis with the service's namespace: every key and channel starts with its prefix.

Services may share one Redis server; the prefix keeps their keys, channels and
Celery queues apart (`hub:identity:...`, `hub:content:...`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from subgraphs.common.settings import ServiceSettings

T = TypeVar("T")


class Namespace:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.hub = PubSubHub(client)

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        await self.client.publish(self.key(channel), json.dumps(payload, default=str))

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """Messages published on `channel` from now on, until the consumer stops iterating.

        Served by the process's one pub/sub connection (`PubSubHub`); raises `SlowSubscriber`
        if the consumer falls too far behind, ConnectionError if Redis cannot be reached
        when it starts, and ends when the app shuts down.
        """
        listener = self.hub.add(self.key(channel))
        try:
            while (message := await listener.get()) is not None:
                yield json.loads(message.data)
        finally:
            self.hub.discard(listener)

    async def shared(self, channel: str, decode: Callable[[str], T]) -> AsyncIterator[T]:
        """As `subscribe`, but each message is decoded (`decode(raw text)`) once for every
        listener of the channel in this process, which all get that same object: it must be
        treated as read-only. For a fan-out (one user's many open subscriptions) the
        decoding, done once, is no longer paid per subscriber."""
        listener = self.hub.add(self.key(channel))
        try:
            while (message := await listener.get()) is not None:
                yield message.decoded(decode)
        finally:
            self.hub.discard(listener)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.hub.close()
        await self.client.aclose()


# Subscriptions share one pub/sub connection per process (PubSubHub); the pool serves
# commands. (When each subscription held its own, redis-py's default of 100 failed the
# 101st concurrent subscriber; the limit stays high so a burst of commands never fails.)
MAX_CONNECTIONS = 5000


def connect(settings: ServiceSettings) -> Namespace:
    client = aioredis.Redis.from_url(
        settings.redis_dsn,
        decode_responses=True,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
    )
    return Namespace(client, settings.key_prefix)


# ---------------------------------------------------------------------------------------
# One pub/sub connection per process, fanned out in memory.
#
# Before, every subscription held a Redis connection of its own: 1,000 subscribers meant
# 1,000 connections per service and 1,000 deliveries by Redis per event. The hub holds ONE
# pub/sub connection, SUBSCRIBEs a channel when its first local listener arrives and
# UNSUBSCRIBEs when the last leaves, and copies each message into every local listener's
# bounded queue.
#
# - A slow listener must not hold up the others: the hub never waits on a queue. When a
#   listener's queue is full it is ended: it gets what is queued, then `SlowSubscriber`
#   (the subscription ends with that error; the client subscribes again and re-reads
#   what it shows). Dropping events silently instead would leave a client believing it
#   saw everything, with gaps nobody can detect.
# - If the connection drops, the hub reconnects with backoff (0.1 s doubling to 5 s) and
#   subscribes every channel that still has listeners; listeners keep their subscription.
#   Messages published during the outage are lost, as with any plain Redis pub/sub.
# - Only the hub's own task talks to the connection: a listener that is cancelled (its
#   client left) only takes itself out of a dict, so no cancellation can land inside a
#   Redis command on its behalf.
# - It starts with the first subscription and stops with the app (`Namespace.close`, at
#   the end of the lifespan); listeners still open then simply complete.

LISTENER_QUEUE_SIZE = 256
POLL_SECONDS = 0.05  # how long the hub reads before looking at (un)subscriptions again
RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0

log = logging.getLogger(__name__)


class SlowSubscriber(Exception):
    """A listener fell `LISTENER_QUEUE_SIZE` messages behind and was ended."""

    def __init__(self) -> None:
        super().__init__(
            f"the subscription fell more than {LISTENER_QUEUE_SIZE} events behind and was "
            "ended; subscribe again"
        )


_WAKE = object()


class Message:
    """One message as the hub received it, handed to every listener of its channel."""

    __slots__ = ("_decode", "_decoded", "data")

    def __init__(self, data: str) -> None:
        self.data = data
        self._decode: Callable[[str], Any] | None = None
        self._decoded: Any = None

    def decoded(self, decode: Callable[[str], T]) -> T:
        """`decode(data)`, computed by the first listener that asks and reused by the others
        (a decoder that raises is not remembered: each listener gets its error)."""
        if self._decode is not decode:
            self._decoded = decode(self.data)
            self._decode = decode
        result: T = self._decoded
        return result


class Listener:
    def __init__(self, channel: str, size: int) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=size)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.end: BaseException | None = None
        self.ended = False

    def deliver(self, message: Message) -> bool:
        """Queue `message`; False if the queue is full (the hub then ends this listener)."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def finish(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended, self.end = True, error
        if not self.ready.done():
            if error is None:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(error)
                self.ready.exception()  # retrieved: get() raises it
        with suppress(asyncio.QueueFull):  # a full queue's consumer is not waiting anyway
            self.queue.put_nowait(_WAKE)

    async def get(self) -> Message | None:
        """The next message; None once the hub closed; raises if this listener was ended."""
        await self.ready
        while True:
            if self.ended and self.queue.empty():
                if self.end is not None:
                    raise self.end
                return None
            item = await self.queue.get()
            if isinstance(item, Message):
                return item


class PubSubHub:
    """One process's Redis pub/sub connection, shared by all its listeners (see above)."""

    def __init__(self, client: aioredis.Redis, *, queue_size: int = LISTENER_QUEUE_SIZE) -> None:
        self.client = client
        self.queue_size = queue_size
        self.listeners: dict[str, set[Listener]] = {}
        self.subscribed: set[str] = set()
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._served = False

    def add(self, channel: str) -> Listener:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (tests): start afresh
            self._loop, self._task = loop, None
            self.listeners, self.subscribed = {}, set()
            self._changed = asyncio.Event()
        listener = Listener(channel, self.queue_size)
        self.listeners.setdefault(channel, set()).add(listener)
        if channel in self.subscribed:
            listener.ready.set_result(None)
        self._wake()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis-pubsub-hub")
        return listener

    def discard(self, listener: Listener) -> None:
        """Synchronous, so that it runs whole even in a cancelled task."""
        listeners = self.listeners.get(listener.channel)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self.listeners[listener.channel]
                self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            self._served = False
            try:
                await self._serve(pubsub)
            except (aioredis.RedisError, OSError) as error:
                log.warning(
                    "Redis pub/sub connection lost (%s); reconnecting in %.1f s", error, delay
                )
                self.subscribed = set()
                for listeners in self.listeners.values():  # new subscribers hear of it
                    for listener in listeners:
                        if not listener.ready.done():
                            listener.finish(ConnectionError(f"Redis pub/sub unavailable: {error}"))
            finally:
                with suppress(Exception):
                    await pubsub.aclose()
            if self._served:  # it worked for a while: retry soon
                delay = RECONNECT_FIRST_SECONDS
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _serve(self, pubsub: PubSub) -> None:
        assert self._changed is not None
        self.subscribed = set()
        while True:
            self._changed.clear()
            wanted = set(self.listeners)
            added, removed = wanted - self.subscribed, self.subscribed - wanted
            if added:
                await pubsub.subscribe(*added)
            if removed:
                await pubsub.unsubscribe(*removed)
            self.subscribed = wanted
            self._served = True
            for channel in added:
                for listener in self.listeners.get(channel, ()):
                    if not listener.ready.done():
                        listener.ready.set_result(None)
            if not wanted:
                # No listener left: give the connection back (closed) rather than hold an
                # idle one that Redis or the network may drop unseen; the next listener
                # gets a fresh one.
                await pubsub.aclose()
                await self._changed.wait()
                continue
            while not self._changed.is_set():
                message = await pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message["type"] == "message":
                    self._dispatch(message["channel"], message["data"])

    def _dispatch(self, channel: str, data: str) -> None:
        message = Message(data)
        for listener in list(self.listeners.get(channel, ())):
            if not listener.deliver(message):
                log.warning("ending a subscription to %s: %s", channel, SlowSubscriber())
                self.discard(listener)
                listener.finish(SlowSubscriber())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.finish()
        self.listeners, self.subscribed = {}, set()
