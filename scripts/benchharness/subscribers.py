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
import gc
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import websockets

SUBSCRIPTION = "subscription Inbox { notificationAdded { id title } }"
# Subscribers per signed-in user: a person's open tabs, all on the one session (one token:
# the router shares their subscription at communication). Each event (a notification for
# one user) goes to that user's subscribers only.
TABS_PER_USER = 5
# Between the last subscription and the first event, on both paths: what is measured is an
# event's trip through subscriptions already held, not the tail of a thousand handshakes
# (the router and communication still finishing them, and collecting what they left).
SETTLE_SECONDS = 2.0


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
    # The harness's own garbage collections and CPU while the events were published: its
    # pauses delay the frames it times on either path.
    harness: dict[str, Any] = field(default_factory=dict)
    # The events whose last frame came latest: [seconds after the first publish, frames,
    # the slowest frame's ms, the median frame's ms] — a pause shows as several in a row.
    slowest_events: list[list[float]] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@contextmanager
def harness_cost(into: dict[str, Any]) -> Iterator[None]:
    """This process's CPU and garbage collections (count, ms, the longest) inside the block,
    with the heap it holds on entering frozen out of the collector's sight."""
    pauses: list[tuple[int, float]] = []
    started = 0.0

    def timer(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started))

    # What both sides set up before the first publish (a thousand connections, their
    # parsers and buffers) is the harness's own heap, not either side's cost: collected
    # once and frozen, so a collection while publishing walks only what the frames leave
    # behind. Unfrozen on the way out, so the next run starts as this one did.
    gc.collect()
    gc.freeze()
    cpu = time.process_time()
    gc.callbacks.append(timer)
    try:
        yield
    finally:
        gc.callbacks.remove(timer)
        gc.unfreeze()
        into["cpu_ms"] = round(1000 * (time.process_time() - cpu), 1)
        into["gc_count"] = len(pauses)
        into["gc_ms"] = round(1000 * sum(p for _, p in pauses), 1)
        into["gc_longest_ms"] = round(1000 * max((p for _, p in pauses), default=0.0), 1)
        into["gc_by_generation"] = [sum(1 for g, _ in pauses if g == n) for n in range(3)]


def _slowest_events(sent_at: list[int], latencies: list[float]) -> list[list[float]]:
    by_event: dict[int, list[float]] = {}
    for sent, latency in zip(sent_at, latencies, strict=True):
        by_event.setdefault(sent, []).append(latency)
    if not by_event:
        return []
    first = min(by_event)
    rows = [
        [round((sent - first) / 1e9, 3), len(v), round(max(v), 1), round(_percentile(v, 50), 1)]
        for sent, v in by_event.items()
    ]
    return sorted(rows, key=lambda row: -row[2])[:8]


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
    # Connected before the first event is stamped: its connection set-up is no event's.
    await client.ping()
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
    on_publish: Callable[[bool], None] | None = None,  # called before (True) and after
) -> Outcome:
    users = list(tokens)
    harness: dict[str, Any] = {}
    latencies: list[float] = []
    sent_at: list[int] = []
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
                # Frames as they come, until the harness cancels this task: no timeout per
                # receive (a task and a timer per subscriber every half second would be
                # the harness's own load, which the bare-Redis listeners do not carry).
                async for raw in ws:
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
                    sent_at.append(sent)
            raise ConnectionError("the router closed the connection")
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
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
        # Publish once communication listens on every subscriber's channel. Each of its
        # processes listens on a channel once, however many subscriptions it serves there.
        wanted = {channels[users[i % len(users)]] for i in range(subscribers)}
        for _ in range(600):
            listening = await client.pubsub_numsub(*wanted)
            if all(n > 0 for _, n in listening):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE_SECONDS)
        if on_publish is not None:
            on_publish(True)
        with harness_cost(harness):
            events = await _publish_rounds(client, channels, rounds, latencies)
            # Every frame in (or a minute gone): the CPU counted is all of theirs.
            for _ in range(600):
                if len(latencies) >= rounds * connected:
                    break
                await asyncio.sleep(0.1)
        if on_publish is not None:
            on_publish(False)
        await asyncio.sleep(hold_seconds)  # held open: none may drop
    finally:
        await client.aclose()
    still_open = sum(1 for t in tasks if not t.done())
    errors += connected - still_open
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Outcome(
        subscribers=subscribers,
        connected=connected,
        errors=errors,
        events=events,
        received=len(latencies),
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        slowest_events=_slowest_events(sent_at, latencies),
        error_samples=samples,
        harness=harness,
    )


async def direct_redis(
    redis_url: str, users: list[str], *, subscribers: int, rounds: int
) -> Outcome:
    """The same fan-out on plain Redis pub/sub connections."""
    latencies: list[float] = []
    sent_at: list[int] = []
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
                sent_at.append(sent)

    tasks = [asyncio.create_task(listen(p)) for p in listeners]
    await asyncio.sleep(SETTLE_SECONDS)
    publisher = aioredis.Redis.from_url(redis_url)
    harness: dict[str, Any] = {}
    try:
        channels = {user: f"{prefix}{user}" for user in users}
        with harness_cost(harness):
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
        slowest_events=_slowest_events(sent_at, latencies),
        harness=harness,
    )
