"""Who is calling: access tokens verified against identity's published keys.

Every service verifies the bearer token itself — signature (RS256 only, so neither
`alg: none` nor an HS256 token signed with the public key passes), issuer, audience,
expiry — and never trusts a header that anyone could set. Keys come from identity's
JWKS, cached and fetched again when a token names a key id not seen yet (rotation).

Access tokens are short-lived, but a session can end before its tokens do (logout, a
revoked session, a password change or reset, a deactivated account, a reused refresh
token). Identity then records the session id (`sid`) as revoked in the deployment's
Redis (`SessionRevocations`) and every verifier refuses tokens of that session at once,
instead of at their expiry; open subscriptions of the session end too
(subgraphs/common/subscriptions.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import redis.asyncio as aioredis

from subgraphs.common import events
from subgraphs.common.errors import Forbidden, Unauthenticated
from subgraphs.common.settings import HubSettings

ALGORITHMS = ["RS256"]
# An unknown kid triggers a refetch, but not more often than this: a flood of tokens
# with made-up key ids must not become a flood of requests to identity. A request that
# would refetch sooner waits for the interval instead of failing, so a key that was
# rotated in a moment ago is always found.
MIN_REFETCH_SECONDS = 1.0

JWKS = dict[str, Any]

# The revocation registry, shared by every service of a deployment and therefore not under
# a service's namespace but beside the deployment's event stream (HUB_EVENTS_STREAM, default
# `hub:events`), on the same Redis: identity writes, everyone reads. One key per revoked
# session, `<stream>:revoked-session:<sid>` = the reason, kept for as long as a token of the
# session can still be valid; and one pub/sub channel, `<stream>:session-revoked`, on which
# identity announces each revoked sid.
REVOKED_SESSION_KEY = "{stream}:revoked-session:{sid}"
SESSION_REVOKED_CHANNEL = "{stream}:session-revoked"
# How long past its access tokens' lifetime a revocation is remembered: covers the
# verifiers' clock leeway and clock skew between hosts.
REVOCATION_MARGIN_SECONDS = 60

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the access token describes them."""

    user_id: uuid.UUID
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    # organization id -> the caller's roles in it
    organizations: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    session_id: uuid.UUID | None = None
    token_id: str | None = None
    expires_at: float | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        try:
            scope = claims.get("scope", "")
            scopes = scope.split() if isinstance(scope, str) else list(scope)
            organizations = {
                uuid.UUID(org): frozenset(roles) for org, roles in claims.get("orgs", {}).items()
            }
            return cls(
                user_id=uuid.UUID(claims["sub"]),
                scopes=frozenset(scopes),
                roles=frozenset(claims.get("roles", [])),
                organizations=organizations,
                session_id=uuid.UUID(claims["sid"]) if claims.get("sid") else None,
                token_id=claims.get("jti"),
                expires_at=claims.get("exp"),
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            raise Unauthenticated("the access token's claims are malformed") from None


def require_user(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("sign in to do this")
    return principal


def require_scope(principal: Principal | None, *scopes: str) -> Principal:
    """The caller, who must hold every one of `scopes`."""
    principal = require_user(principal)
    missing = [scope for scope in scopes if not principal.has_scope(scope)]
    if missing:
        raise Forbidden(f"this needs the scope {', '.join(missing)}", required_scopes=missing)
    return principal


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class SessionRevocations:
    """Which sessions have ended before their access tokens expire, and who is waiting on them.

    Identity calls `revoke()` after it commits a revocation. Every service asks
    `is_revoked()` once per authenticated request, and open subscriptions `watch()` their
    session. One pub/sub connection per process, whatever the number of requests and
    subscriptions, keeps a copy of the registry in memory: subscribed first, then the
    revoked sids already recorded are read (SCAN), then each announced sid is added. While
    that copy is complete, a lookup costs no round trip; before it is (the process's first
    requests) and whenever the channel is lost, `is_revoked()` asks Redis (one EXISTS), so
    no revocation is missed while announcements might be. A copy that grows past
    `max_remembered` sids (a mass logout) is dropped for the same per-request lookup.

    A Redis outage must not take every signed-in request down with it, so a failed
    lookup lets the token through (logged): revocation then falls back to the token's own
    short expiry, which is what it was before the registry existed.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        stream: str,
        remember_seconds: int = 3600,
        max_remembered: int = 100_000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.channel = SESSION_REVOKED_CHANNEL.format(stream=stream)
        self.remember_seconds = remember_seconds
        self.max_remembered = max_remembered
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        # The in-memory copy: sid -> when it may be forgotten (monotonic). Insertion order
        # is expiry order (every entry lives `remember_seconds`), so pruning pops the front.
        self._revoked: dict[str, float] = {}
        self._complete = False  # the copy holds every revocation Redis holds

    @classmethod
    def for_deployment(cls, hub: HubSettings) -> SessionRevocations:
        return cls(events.connect(hub), stream=hub.events_stream)

    def key(self, session_id: uuid.UUID | str) -> str:
        return REVOKED_SESSION_KEY.format(stream=self.stream, sid=session_id)

    async def revoke(self, session_ids: Iterable[uuid.UUID], *, reason: str) -> None:
        """Record `session_ids` as revoked and announce them (identity, after its commit)."""
        ids = [str(sid) for sid in session_ids]
        if not ids:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.set(self.key(sid), reason, ex=self.remember_seconds)
                pipe.publish(self.channel, sid)
            await pipe.execute()
        # This process's own requests must not wait for the announcement to come back.
        for sid in ids:
            self._remember(sid)

    async def is_revoked(self, session_id: uuid.UUID | str) -> bool:
        sid = str(session_id)
        if self._complete:
            return self.revoked_in_memory(sid)
        self._start_listener()
        return await self._ask_redis(sid)

    def revoked_in_memory(self, session_id: uuid.UUID | str) -> bool:
        """`is_revoked`'s answer from the in-memory copy (only while `lookups_in_memory`)."""
        sid = str(session_id)
        return sid in self._revoked and self._revoked[sid] > time.monotonic()

    @property
    def lookups_in_memory(self) -> bool:
        """True while `is_revoked` answers from the in-memory copy, without a round trip."""
        return self._complete

    async def _ask_redis(self, sid: str) -> bool:
        try:
            return bool(await self.client.exists(self.key(sid)))
        except (aioredis.RedisError, OSError):
            log.warning("session revocation lookup failed; accepting the token", exc_info=True)
            return False

    def _remember(self, sid: str) -> None:
        now = time.monotonic()
        self._revoked.pop(sid, None)
        self._revoked[sid] = now + self.remember_seconds
        for oldest, until in list(itertools.islice(self._revoked.items(), 64)):
            if until > now:
                break
            del self._revoked[oldest]
        if len(self._revoked) > self.max_remembered:
            log.warning(
                "more than %d sessions revoked at once; looking each one up in Redis",
                self.max_remembered,
            )
            self._complete = False
            self._revoked.clear()

    async def _load_recorded(self) -> None:
        """Every revocation Redis records now, into the copy (after subscribing)."""
        pattern = self.key("*")
        async for key in self.client.scan_iter(match=pattern, count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            self._remember(name.rsplit(":", 1)[-1])

    @asynccontextmanager
    async def watch(self, session_id: uuid.UUID | str) -> AsyncIterator[asyncio.Event]:
        """An event set when `session_id` is revoked (already set if it is already revoked)."""
        sid = str(session_id)
        revoked = asyncio.Event()
        self._watchers.setdefault(sid, set()).add(revoked)
        try:
            self._start_listener()
            # Subscribed first, then checked: a revocation between the two is not missed.
            await self._listening.wait()
            if await self.is_revoked(sid):
                revoked.set()
            yield revoked
        finally:
            watchers = self._watchers.get(sid)
            if watchers is not None:
                watchers.discard(revoked)
                if not watchers:
                    del self._watchers[sid]

    @property
    def watched_sessions(self) -> int:
        return len(self._watchers)

    def _start_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="session-revocations")

    async def _listen(self) -> None:
        """Wake watchers of each announced sid; after a lost connection, re-check them all."""
        delay = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            abandoned = False
            try:
                await pubsub.subscribe(self.channel)
                # Subscribed first, then read: a revocation in between is in one or both.
                await self._load_recorded()
                self._complete = len(self._revoked) <= self.max_remembered
                # Announcements missed while disconnected: wake every watched sid revoked.
                for sid in list(self._watchers):
                    if sid in self._revoked:
                        self._wake(sid)
                self._listening.set()
                delay = 0.1
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        sid = message["data"]
                        sid = sid.decode() if isinstance(sid, bytes) else str(sid)
                        self._remember(sid)
                        self._wake(sid)
            except GeneratorExit:
                # Closed by the garbage collector after its loop was (a loop closed without
                # stopping the listener, as some test clients do): nothing can be awaited now.
                abandoned = True
                raise
            except (aioredis.RedisError, OSError):
                log.warning("session revocation channel lost; reconnecting", exc_info=True)
                self._listening.set()  # watchers fall back to expiry meanwhile
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._complete = False  # announcements may be missed: ask Redis meanwhile
                if not abandoned:
                    await pubsub.aclose()

    def _wake(self, sid: str) -> None:
        for event in self._watchers.get(sid, ()):
            event.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
            self._listening.clear()
        await self.client.aclose()


class TokenVerifier:
    """Verifies access tokens against a JWKS obtained from `fetch_jwks`.

    With `revocations`, a token of a revoked session is refused as well.

    A client sends the same token with every request until it expires, so a token whose
    signature and claims were verified is remembered (by its exact text, up to
    `remember_tokens` of them) until its expiry: the next requests skip the decoding and
    the RSA check, ~0.2 ms each. Expiry and revocation are still checked every time, and
    the remembered tokens are forgotten whenever the published keys change.
    """

    def __init__(
        self,
        fetch_jwks: Callable[[], Awaitable[JWKS]],
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300,
        leeway_seconds: float = 5,
        revocations: SessionRevocations | None = None,
        remember_tokens: int = 4096,
    ) -> None:
        self.revocations = revocations
        self.remember_tokens = remember_tokens
        self._verified: dict[str, tuple[Principal, str]] = {}  # token -> (principal, kid)
        self._fetch_jwks = fetch_jwks
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.leeway = leeway_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, hub: HubSettings, *, revocations: SessionRevocations | None = None
    ) -> TokenVerifier:
        async def fetch() -> JWKS:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(hub.jwks_url)
                response.raise_for_status()
                return response.json()

        return cls(
            fetch,
            issuer=hub.jwt_issuer,
            audience=hub.jwt_audience,
            cache_seconds=hub.jwks_cache_seconds,
            revocations=revocations,
        )

    async def verify(self, token: str) -> Principal:
        # The common case, a remembered token whose key and revocation state are known
        # without waiting, is answered without the chain of awaits below (~10 µs of a
        # request, measured in content's list).
        principal = self._known_now(token)
        if principal is not None:
            return principal
        principal = await self._remembered(token)
        if principal is None:
            principal = await self._verify_signed(token)
        await self._refuse_revoked(principal)
        return principal

    def _known_now(self, token: str) -> Principal | None:
        """The remembered principal when every check `verify` makes can be made without
        waiting: unexpired, its key still published and fresh, its session known not to be
        revoked from the in-memory copy. None: ask `verify`'s full path."""
        entry = self._unexpired_entry(token)
        if entry is None:
            return None
        principal, kid = entry
        if self._fresh_key(kid) is None:
            return None
        revocations = self.revocations
        if revocations is not None and principal.session_id is not None:
            if not revocations.lookups_in_memory:
                return None
            if revocations.revoked_in_memory(principal.session_id):
                return None  # refused by the full path, with its reason
        return principal

    async def _remembered(self, token: str) -> Principal | None:
        entry = self._unexpired_entry(token)
        if entry is None:
            return None
        principal, kid = entry
        # The key set is kept as fresh as for any token: a key withdrawn since is refused.
        await self._key(kid)
        return principal if token in self._verified else None

    def _unexpired_entry(self, token: str) -> tuple[Principal, str] | None:
        """The remembered (principal, key id) of a token, unless it has expired since."""
        entry = self._verified.get(token)
        if entry is None or not self._unexpired(entry[0]):
            return None
        return entry

    def _unexpired(self, principal: Principal) -> bool:
        return principal.expires_at is not None and time.time() < principal.expires_at + self.leeway

    async def _refuse_revoked(self, principal: Principal) -> None:
        if (
            self.revocations is not None
            and principal.session_id is not None
            and await self.revocations.is_revoked(principal.session_id)
        ):
            raise Unauthenticated("the session has been signed out", reason="revoked")

    async def _verify_signed(self, token: str) -> Principal:
        self._verified.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the access token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("the access token's algorithm is not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired", reason="expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the access token is not meant for Hub") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the access token was not issued by Hub") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the access token is invalid") from None
        if claims.get("typ", "access") != "access":
            raise Unauthenticated("this is not an access token")
        principal = Principal.from_claims(claims)
        if self.remember_tokens > 0:
            while len(self._verified) >= self.remember_tokens:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (principal, str(header.get("kid", "")))
        return principal

    def _fresh_key(self, kid: str) -> jwt.PyJWK | None:
        """The published key `kid`, while the key set is fresher than `cache_seconds`."""
        if kid in self._keys and time.monotonic() - self._fetched_at < self.cache_seconds:
            return self._keys[kid]
        return None

    async def _key(self, kid: str) -> jwt.PyJWK:
        if (key := self._fresh_key(kid)) is not None:
            return key
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if kid not in self._keys and age < MIN_REFETCH_SECONDS:
                await asyncio.sleep(MIN_REFETCH_SECONDS - age)
                age = MIN_REFETCH_SECONDS
            if kid not in self._keys or age >= self.cache_seconds:
                await self._refresh()
        if kid not in self._keys:
            raise Unauthenticated("the access token is signed with an unknown key")
        return self._keys[kid]

    async def _refresh(self) -> None:
        try:
            jwks = await self._fetch_jwks()
        except Exception as error:  # identity unreachable: keep the keys already known
            if not self._keys:
                raise Unauthenticated("the signing keys are unavailable; try again") from error
            return
        keys = {
            key["kid"]: jwt.PyJWK.from_dict(key)
            for key in jwks.get("keys", [])
            if key.get("kid") and key.get("alg", "RS256") in ALGORITHMS
        }
        if self._keys.keys() - keys.keys():
            self._verified.clear()  # a key withdrawn early takes its tokens with it
        self._keys = keys
        self._fetched_at = time.monotonic()

    def forget_keys(self) -> None:
        """Drop the cache (tests; or after identity rotated keys out-of-band)."""
        self._keys = {}
        self._verified.clear()
        self._fetched_at = float("-inf")
