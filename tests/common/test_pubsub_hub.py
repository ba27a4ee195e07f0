"""subgraphs.common.redis.PubSubHub against real Redis: one pub/sub connection per process."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from subgraphs.common import redis as hub_redis
from subgraphs.common.redis import Namespace, SlowSubscriber

REDIS_URL = os.environ.get("HUB_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    name = f"hubtest-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, client_name=name)
    space = Namespace(client, f"hubtest:{name}:")
    yield space
    await space.close()


@pytest.fixture
async def admin() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def numsub(admin: aioredis.Redis, space: Namespace, channel: str) -> int:
    [(_, count)] = await admin.pubsub_numsub(space.key(channel))
    return int(count)


async def pubsub_connections(admin: aioredis.Redis, space: Namespace) -> int:
    name = space.client.get_connection_kwargs()["client_name"]
    clients = await admin.client_list()
    return sum(1 for c in clients if c.get("name") == name and int(c.get("sub", 0)) > 0)


async def listen(space: Namespace, channel: str, into: list[Any], *, delay: float = 0) -> None:
    async for event in space.subscribe(channel):
        into.append(event)
        if delay:
            await asyncio.sleep(delay)


async def started(
    space: Namespace, admin: aioredis.Redis, channel: str, count: int, **kw: Any
) -> tuple[list[asyncio.Task[None]], list[list[Any]]]:
    received: list[list[Any]] = [[] for _ in range(count)]
    tasks = [asyncio.create_task(listen(space, channel, r, **kw)) for r in received]
    await eventually(lambda: _all_ready(space, channel, count))
    return tasks, received


async def _all_ready(space: Namespace, channel: str, count: int) -> bool:
    listeners = space.hub.listeners.get(space.key(channel), set())
    return len(listeners) == count and all(lis.ready.done() for lis in listeners)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_many_listeners_share_one_connection_and_all_get_each_event(namespace, admin) -> None:
    tasks, received = await started(namespace, admin, "inbox", 200)
    assert await numsub(admin, namespace, "inbox") == 1
    assert await pubsub_connections(admin, namespace) == 1
    for n in range(3):
        await namespace.publish("inbox", {"n": n})
    await eventually(lambda: _received(received, 3))
    assert all(r == [{"n": 0}, {"n": 1}, {"n": 2}] for r in received)
    # A second channel rides on the same connection.
    other, _ = await started(namespace, admin, "other", 5)
    assert await pubsub_connections(admin, namespace) == 1
    await stop(tasks + other)


async def _received(received: list[list[Any]], count: int) -> bool:
    return all(len(r) >= count for r in received)


async def test_the_channel_is_unsubscribed_when_the_last_listener_leaves(namespace, admin) -> None:
    tasks, _ = await started(namespace, admin, "inbox", 10)
    await stop(tasks[:9])
    assert await numsub(admin, namespace, "inbox") == 1
    await stop(tasks[9:])

    async def gone() -> bool:
        return await numsub(admin, namespace, "inbox") == 0

    await eventually(gone)
    assert namespace.hub.listeners == {}
    # And subscribed again for a newcomer.
    again, received = await started(namespace, admin, "inbox", 1)
    assert await numsub(admin, namespace, "inbox") == 1
    await namespace.publish("inbox", {"n": 1})
    await eventually(lambda: _received(received, 1))
    await stop(again)


async def test_a_slow_listener_does_not_delay_the_others_and_is_ended(
    namespace, admin, monkeypatch
) -> None:
    monkeypatch.setattr(namespace.hub, "queue_size", 5)
    fast, fast_received = await started(namespace, admin, "inbox", 3)
    slow_received: list[Any] = []
    slow = asyncio.create_task(listen(namespace, "inbox", slow_received, delay=10))
    await eventually(lambda: _all_ready(namespace, "inbox", 4))
    started_at = time.monotonic()
    for n in range(20):
        await namespace.publish("inbox", {"n": n})
    await eventually(lambda: _received(fast_received, 20))
    assert time.monotonic() - started_at < 2  # not held up by the one sleeping 10 s a message
    assert all([e["n"] for e in r] == list(range(20)) for r in fast_received)
    # The slow one was ended (it fell more than its queue behind) and left the channel.
    assert len(namespace.hub.listeners[namespace.key("inbox")]) == 3
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    await stop(fast)


async def test_an_overflowed_listener_gets_its_backlog_then_a_clear_error(namespace, admin) -> None:
    namespace.hub.queue_size = 3
    stream = namespace.subscribe("inbox")
    first = asyncio.ensure_future(anext(stream))
    await eventually(lambda: _all_ready(namespace, "inbox", 1))
    for n in range(6):
        await namespace.publish("inbox", {"n": n})
    assert await first == {"n": 0}
    seen = []
    with pytest.raises(SlowSubscriber, match="fell more than"):
        while True:
            seen.append((await anext(stream))["n"])
    assert seen[0] == 1 and len(seen) <= 3
    await stream.aclose()
    assert namespace.hub.listeners == {}


async def test_listeners_survive_a_killed_pubsub_connection(namespace, admin, monkeypatch) -> None:
    monkeypatch.setattr(hub_redis, "RECONNECT_FIRST_SECONDS", 0.05)
    tasks, received = await started(namespace, admin, "inbox", 20)
    await namespace.publish("inbox", {"n": 0})
    await eventually(lambda: _received(received, 1))
    name = namespace.client.get_connection_kwargs()["client_name"]
    clients = await admin.client_list()
    [victim] = [c for c in clients if c.get("name") == name and int(c.get("sub", 0)) > 0]
    await admin.client_kill_filter(_id=victim["id"])

    async def resubscribed() -> bool:
        return await numsub(admin, namespace, "inbox") == 1

    await eventually(resubscribed)
    # Published after the reconnection: every listener gets it (during the outage: lost).
    for n in range(1, 4):
        await namespace.publish("inbox", {"n": n})
        await asyncio.sleep(0.02)
    await eventually(lambda: _received(received, 2))
    assert all(r[0] == {"n": 0} and {"n": 3} in r for r in received)
    assert await pubsub_connections(admin, namespace) == 1
    await stop(tasks)


async def test_cancelled_subscriptions_leave_no_listener(namespace, admin) -> None:
    for _ in range(100):
        stream = namespace.subscribe("inbox")
        task = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()
    assert namespace.hub.listeners == {}

    async def gone() -> bool:
        return await numsub(admin, namespace, "inbox") == 0

    await eventually(gone)


async def test_close_ends_open_subscriptions(namespace, admin) -> None:
    received: list[Any] = []
    task = asyncio.create_task(listen(namespace, "inbox", received))
    await eventually(lambda: _all_ready(namespace, "inbox", 1))
    await namespace.hub.close()
    await asyncio.wait_for(task, 2)  # completed, not cancelled


async def test_shared_decodes_each_message_once_for_all_its_listeners(namespace, admin) -> None:
    decoded: list[str] = []

    def decode(data: str) -> dict[str, Any]:
        decoded.append(data)
        return {"decoded": json.loads(data)}

    received: list[list[Any]] = [[] for _ in range(20)]

    async def shared_listen(into: list[Any]) -> None:
        async for value in namespace.shared("inbox", decode):
            into.append(value)

    tasks = [asyncio.create_task(shared_listen(r)) for r in received]
    await eventually(lambda: _all_ready(namespace, "inbox", 20))
    for n in range(3):
        await namespace.publish("inbox", {"n": n})
    await eventually(lambda: _received(received, 3))
    assert len(decoded) == 3  # not 60
    assert all(r == [{"decoded": {"n": n}} for n in range(3)] for r in received)
    assert all(r[0] is received[0][0] for r in received)  # the one object, shared
    await stop(tasks)
    assert namespace.hub.listeners == {}


async def test_a_failing_decoder_fails_each_listener(namespace, admin) -> None:
    def decode(data: str) -> Any:
        raise ValueError("undecodable")

    streams = [namespace.shared("inbox", decode) for _ in range(3)]
    nexts = [asyncio.ensure_future(anext(s)) for s in streams]
    await eventually(lambda: _all_ready(namespace, "inbox", 3))
    await namespace.publish("inbox", {"n": 0})
    for waiting in nexts:
        with pytest.raises(ValueError, match="undecodable"):
            await waiting
    for stream in streams:
        await stream.aclose()
    assert namespace.hub.listeners == {}
