"""Redis with the service's namespace: every key and channel starts with its prefix.

Services may share one Redis server; the prefix keeps their keys, channels and
Celery queues apart (`hub:identity:...`, `hub:content:...`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from subgraphs.common.settings import ServiceSettings


class Namespace:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        await self.client.publish(self.key(channel), json.dumps(payload, default=str))

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """Messages published on `channel` from now on, until the consumer stops iterating."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.key(channel))
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield json.loads(message["data"])
        finally:
            await pubsub.aclose()

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


# Each open subscription holds a pub/sub connection of this pool: redis-py's default of
# 100 failed the 101st concurrent subscriber (scripts/bench holds 1,000 through the router).
MAX_CONNECTIONS = 5000


def connect(settings: ServiceSettings) -> Namespace:
    client = aioredis.Redis.from_url(
        settings.redis_dsn,
        decode_responses=True,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
    )
    return Namespace(client, settings.key_prefix)
