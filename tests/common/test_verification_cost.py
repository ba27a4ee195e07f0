"""What verifying a token costs per request, and that the shortcuts never accept what a full
check would refuse: a verified token is remembered until it expires, and the revocation
registry is read from memory once this process holds a complete copy of it."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa

from subgraphs.common.auth import SessionRevocations, TokenVerifier
from subgraphs.common.errors import Unauthenticated

REDIS_URL = os.environ.get("HUB_REDIS_URL", "redis://127.0.0.1:6379/0")
ISSUER, AUDIENCE = "https://hub.test", "hub-test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


class KeySet:
    """A JWKS that a test can change, standing in for identity's."""

    def __init__(self) -> None:
        self.keys = [jwk_of(KEY, "k1")]
        self.fetches = 0

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": list(self.keys)}


def token(*, sid: uuid.UUID | None = None, seconds: int = 600, kid: str = "k1") -> str:
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + seconds,
        "jti": uuid.uuid4().hex,
        "sid": str(sid or uuid.uuid4()),
    }
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": kid})


class Counting:
    """Counts the calls of one attribute (a module function or a method) while in use."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)

        if asyncio.iscoroutinefunction(original):

            async def counted_async(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return await original(*args, **kwargs)

            monkeypatch.setattr(owner, name, counted_async)
        else:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return original(*args, **kwargs)

            monkeypatch.setattr(owner, name, counted)


@pytest.fixture
async def registry() -> AsyncIterator[SessionRevocations]:
    stream = f"hubtest-{uuid.uuid4().hex[:8]}:events"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, client_name=stream)
    revocations = SessionRevocations(client, stream=stream, remember_seconds=120)
    yield revocations
    await revocations.close()


@pytest.fixture
async def other_process(registry: SessionRevocations) -> AsyncIterator[SessionRevocations]:
    """Identity's registry in another process: same Redis and stream, its own connections."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    revocations = SessionRevocations(client, stream=registry.stream, remember_seconds=120)
    yield revocations
    await revocations.close()


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def verifier(keys: KeySet, revocations: SessionRevocations | None = None) -> TokenVerifier:
    return TokenVerifier(keys.fetch, issuer=ISSUER, audience=AUDIENCE, revocations=revocations)


# --- a verified token is remembered ----------------------------------------------------


async def test_a_token_is_decoded_and_its_signature_checked_once(monkeypatch) -> None:
    decodes = Counting(monkeypatch, jwt, "decode")
    check = verifier(KeySet())
    given = token()
    first = await check.verify(given)
    for _ in range(20):
        assert await check.verify(given) == first
    assert decodes.calls == 1
    await check.verify(token())  # another token is checked in full
    assert decodes.calls == 2


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    check = verifier(KeySet())
    check.leeway = 0
    given = token(seconds=1)
    await check.verify(given)
    await asyncio.sleep(1.1)
    with pytest.raises(Unauthenticated) as refused:
        await check.verify(given)
    assert refused.value.details.get("reason") == "expired"


async def test_a_tampered_copy_of_a_remembered_token_is_refused() -> None:
    check = verifier(KeySet())
    given = token()
    await check.verify(given)
    head, payload, signature = given.split(".")
    with pytest.raises(Unauthenticated):
        await check.verify(f"{head}.{payload}.{signature[:-4]}AAAA")


async def test_remembered_tokens_are_forgotten_when_the_published_keys_change(monkeypatch) -> None:
    keys = KeySet()
    check = verifier(keys)
    given = token()
    await check.verify(given)
    # Identity withdraws the key early (compromised) and publishes another one.
    keys.keys = [jwk_of(rsa.generate_private_key(public_exponent=65537, key_size=2048), "k2")]
    check._fetched_at = float("-inf")  # the JWKS cache ran out
    with pytest.raises(Unauthenticated):
        await check.verify(given)


async def test_the_memory_of_tokens_is_bounded(monkeypatch) -> None:
    check = verifier(KeySet())
    check.remember_tokens = 8
    for _ in range(30):
        await check.verify(token())
    assert len(check._verified) == 8


# --- revocations read from memory ------------------------------------------------------


async def test_a_remembered_token_of_a_session_revoked_later_is_refused(
    registry, other_process
) -> None:
    sid = uuid.uuid4()
    check = verifier(KeySet(), registry)
    given = token(sid=sid)
    await check.verify(given)
    await other_process.revoke([sid], reason="logout")
    await eventually(lambda: registry.is_revoked(sid))
    with pytest.raises(Unauthenticated) as refused:
        await check.verify(given)
    assert refused.value.details.get("reason") == "revoked"


async def test_once_the_copy_is_complete_a_lookup_needs_no_round_trip(
    monkeypatch, registry
) -> None:
    await registry.is_revoked(uuid.uuid4())  # the first lookups ask Redis; the copy loads
    await eventually(lambda: registry.lookups_in_memory)
    exists = Counting(monkeypatch, registry.client, "exists")
    for _ in range(100):
        assert not await registry.is_revoked(uuid.uuid4())
    assert exists.calls == 0


async def test_revocations_recorded_before_the_process_started_are_known(
    registry, other_process
) -> None:
    earlier = [uuid.uuid4() for _ in range(3)]
    await other_process.revoke(earlier, reason="logout")
    await registry.is_revoked(uuid.uuid4())
    await eventually(lambda: registry.lookups_in_memory)
    for sid in earlier:
        assert await registry.is_revoked(sid)


async def test_an_announced_revocation_reaches_the_copy_within_milliseconds(
    registry, other_process
) -> None:
    await registry.is_revoked(uuid.uuid4())
    await eventually(lambda: registry.lookups_in_memory)
    sid = uuid.uuid4()
    started = time.monotonic()
    await other_process.revoke([sid], reason="logout")
    await eventually(lambda: registry.is_revoked(sid), seconds=1.0)
    print(f"revocation seen by another process after {1000 * (time.monotonic() - started):.1f} ms")


async def test_the_revoking_process_knows_at_once(registry) -> None:
    await registry.is_revoked(uuid.uuid4())
    await eventually(lambda: registry.lookups_in_memory)
    sid = uuid.uuid4()
    await registry.revoke([sid], reason="logout")
    assert await registry.is_revoked(sid)  # no wait for its own announcement


async def test_with_the_channel_lost_every_lookup_asks_redis(
    monkeypatch, registry, other_process
) -> None:
    await registry.is_revoked(uuid.uuid4())
    await eventually(lambda: registry.lookups_in_memory)
    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        # Announcements sent while this process is not subscribed would be lost for good.
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == registry.stream:
                await admin.client_kill_filter(_id=client["id"])
        await eventually(lambda: not registry.lookups_in_memory, seconds=2.0)
    finally:
        await admin.aclose()
    sid = uuid.uuid4()
    await other_process.revoke([sid], reason="logout")
    assert await registry.is_revoked(sid)
    # Reconnected, it reads what it missed and goes back to memory.
    await eventually(lambda: registry.lookups_in_memory)
    assert await registry.is_revoked(sid)


async def test_a_mass_revocation_falls_back_to_lookups(registry, other_process) -> None:
    registry.max_remembered = 5
    await registry.is_revoked(uuid.uuid4())
    await eventually(lambda: registry.lookups_in_memory)
    many = [uuid.uuid4() for _ in range(10)]
    await other_process.revoke(many, reason="password changed")
    await eventually(lambda: not registry.lookups_in_memory)
    for sid in many:
        assert await registry.is_revoked(sid)
