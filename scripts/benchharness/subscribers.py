"""Many concurrent subscribers through the router, against the same fan-out on bare Redis.

Through the router: each subscriber signs in over graphql-transport-ws and subscribes to
`notificationAdded`; the harness then publishes notifications on communication's Redis
channel for one recipient at a time (what communication does when it stores one) and
times publish -> frame at each of that user's subscribers.

The yardstick: as many plain Redis pub/sub connections on equivalent channels, in the
same process, with the same publishing pattern. The ratio of the two p99s is what the
router and the subgraph add to an event's trip.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import websockets

SUBSCRIPTION = "subscription Inbox { notificationAdded { id title } }"


@dataclass
class Outcome:
    subscribers: int
    connected: int
    errors: int
    events: int
    received: int
    p50_ms: float
    p99_ms: float
    error_samples: list[str] = field(default_factory=list)  # the first few, verbatim


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _event(recipient: str, sent_ns: int) -> str:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "recipient_id": recipient,
            "category": "general",
            "title": str(sent_ns),  # the publish time, read back by the subscriber
            "body": "",
            "status": "delivered",
            "delivered_at": now,
            "read_at": None,
            "subject_type": None,
            "subject_id": None,
            "idempotency_key": str(uuid.uuid4()),
            "sender_id": None,
            "created_at": now,
            "updated_at": now,
        }
    )


async def _publish_rounds(
    client: aioredis.Redis, channel_of: dict[str, str], rounds: int, latencies: list[float]
) -> int:
    events = 0
    for _ in range(rounds):
        for recipient, channel in channel_of.items():
            await client.publish(channel, _event(recipient, time.perf_counter_ns()))
            events += 1
            await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)  # the last frames in flight
    return events


async def through_router(
    ws_url: str,
    tokens: dict[str, str],  # user id -> access token
    redis_url: str,
    channel_prefix: str,  # communication's namespace, e.g. "hubbench:communication:"
    *,
    subscribers: int,
    rounds: int,
    hold_seconds: float,
) -> Outcome:
    users = list(tokens)
    latencies: list[float] = []
    samples: list[str] = []
    errors = 0
    connected = 0
    ready = asyncio.Event()
    stop = asyncio.Event()

    async def subscriber(i: int) -> None:
        nonlocal errors, connected
        user = users[i % len(users)]
        try:
            async with websockets.connect(
                ws_url,
                subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                open_timeout=60,
                max_size=None,
                ping_interval=None,
            ) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"Authorization": f"Bearer {tokens[user]}"},
                        }
                    )
                )
                ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no ack: {ack}")
                await ws.send(
                    json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
                )
                connected += 1
                if connected == subscribers:
                    ready.set()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    arrived = time.perf_counter_ns()
                    message = json.loads(raw)
                    if message.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    if message.get("type") != "next" or message["payload"].get("errors"):
                        errors += 1
                        if len(samples) < 5:
                            samples.append(str(raw)[:300])
                        continue
                    sent = int(message["payload"]["data"]["notificationAdded"]["title"])
                    latencies.append((arrived - sent) / 1e6)
        except Exception as error:  # every failure of a subscriber is counted
            errors += 1
            if len(samples) < 5:
                samples.append(repr(error)[:300])
            if not ready.is_set() and connected + errors >= subscribers:
                ready.set()

    tasks = []
    for i in range(subscribers):
        tasks.append(asyncio.create_task(subscriber(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # a ramp, not a thundering herd of handshakes
    await asyncio.wait_for(ready.wait(), 120)
    client = aioredis.Redis.from_url(redis_url)
    try:
        channels = {user: f"{channel_prefix}notifications:{user}" for user in users}
        # Publish once communication listens on Redis for every subscriber.
        for _ in range(600):
            listening = sum(n for _, n in await client.pubsub_numsub(*channels.values()))
            if listening >= connected:
                break
            await asyncio.sleep(0.1)
        events = await _publish_rounds(client, channels, rounds, latencies)
        await asyncio.sleep(hold_seconds)  # held open: none may drop
    finally:
        await client.aclose()
    still_open = sum(1 for t in tasks if not t.done())
    errors += connected - still_open
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Outcome(
        subscribers=subscribers,
        connected=connected,
        errors=errors,
        events=events,
        received=len(latencies),
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        error_samples=samples,
    )


async def direct_redis(
    redis_url: str, users: list[str], *, subscribers: int, rounds: int
) -> Outcome:
    """The same fan-out on plain Redis pub/sub connections."""
    latencies: list[float] = []
    prefix = f"hubbench:yardstick:{uuid.uuid4().hex[:6]}:"
    clients = []
    listeners = []
    for i in range(subscribers):
        client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{prefix}{users[i % len(users)]}")
        clients.append(client)
        listeners.append(pubsub)

    async def listen(pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                arrived = time.perf_counter_ns()
                sent = int(json.loads(message["data"])["title"])
                latencies.append((arrived - sent) / 1e6)

    tasks = [asyncio.create_task(listen(p)) for p in listeners]
    publisher = aioredis.Redis.from_url(redis_url)
    try:
        channels = {user: f"{prefix}{user}" for user in users}
        events = await _publish_rounds(publisher, channels, rounds, latencies)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pubsub in listeners:
            await pubsub.aclose()
        for client in clients:
            await client.aclose()
        await publisher.aclose()
    return Outcome(
        subscribers=subscribers,
        connected=subscribers,
        errors=0,
        events=events,
        received=len(latencies),
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
    )
