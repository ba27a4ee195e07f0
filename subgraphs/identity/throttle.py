"""Brute-force protection for logins and MFA codes, counted in Redis.

Failures are counted per account and per client IP over a window. Past the limit the
account (or IP) is locked for a time that doubles with every further failure, up to a
ceiling; a success clears the account's count. Accounts are keyed by a hash of the
normalized email, whether or not it exists, so locking reveals nothing either.
"""

from __future__ import annotations

import hashlib

from subgraphs.common.errors import TooManyRequests
from subgraphs.common.redis import Namespace
from subgraphs.identity.settings import IdentitySettings

WINDOW_SECONDS = 3600


def account_key(kind: str, identifier: str) -> str:
    return f"{kind}:{hashlib.sha256(identifier.encode()).hexdigest()[:32]}"


class Throttle:
    def __init__(self, redis: Namespace, settings: IdentitySettings) -> None:
        self.redis = redis
        self.settings = settings

    async def check(self, account: str, ip: str | None) -> None:
        """Refuse with 429 and Retry-After while the account or the IP is locked."""
        keys = [self.redis.key("lock", account)]
        if ip:
            keys.append(self.redis.key("lock", "ip", ip))
        for key in keys:
            ttl = await self.redis.client.ttl(key)
            if ttl and ttl > 0:
                raise TooManyRequests(
                    f"too many failed attempts; try again in {ttl} seconds", retry_after=ttl
                )

    async def failed(self, account: str, ip: str | None) -> None:
        await self._count(
            self.redis.key("failures", account),
            self.redis.key("lock", account),
            self.settings.login_failures_before_lock,
        )
        if ip:
            await self._count(
                self.redis.key("failures", "ip", ip),
                self.redis.key("lock", "ip", ip),
                self.settings.ip_failures_before_lock,
            )

    async def succeeded(self, account: str) -> None:
        await self.redis.client.delete(
            self.redis.key("failures", account), self.redis.key("lock", account)
        )

    async def _count(self, counter: str, lock: str, limit: int) -> None:
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, WINDOW_SECONDS)
            failures, _ = await pipe.execute()
        if failures >= limit:
            seconds = min(
                self.settings.lock_seconds * 2 ** (failures - limit),
                self.settings.max_lock_seconds,
            )
            await self.redis.client.set(lock, "1", ex=int(seconds))
