"""Who is calling: access tokens verified against identity's published keys.

Every service verifies the bearer token itself — signature (RS256 only, so neither
`alg: none` nor an HS256 token signed with the public key passes), issuer, audience,
expiry — and never trusts a header that anyone could set. Keys come from identity's
JWKS, cached and fetched again when a token names a key id not seen yet (rotation).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from subgraphs.common.errors import Forbidden, Unauthenticated
from subgraphs.common.settings import HubSettings

ALGORITHMS = ["RS256"]
# An unknown kid triggers a refetch, but not more often than this: a flood of tokens
# with made-up key ids must not become a flood of requests to identity. A request that
# would refetch sooner waits for the interval instead of failing, so a key that was
# rotated in a moment ago is always found.
MIN_REFETCH_SECONDS = 1.0

JWKS = dict[str, Any]


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


class TokenVerifier:
    """Verifies access tokens against a JWKS obtained from `fetch_jwks`."""

    def __init__(
        self,
        fetch_jwks: Callable[[], Awaitable[JWKS]],
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300,
        leeway_seconds: float = 5,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.leeway = leeway_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, hub: HubSettings) -> TokenVerifier:
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
        )

    async def verify(self, token: str) -> Principal:
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
        return Principal.from_claims(claims)

    async def _key(self, kid: str) -> jwt.PyJWK:
        now = time.monotonic()
        if kid in self._keys and now - self._fetched_at < self.cache_seconds:
            return self._keys[kid]
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
        self._keys = {
            key["kid"]: jwt.PyJWK.from_dict(key)
            for key in jwks.get("keys", [])
            if key.get("kid") and key.get("alg", "RS256") in ALGORITHMS
        }
        self._fetched_at = time.monotonic()

    def forget_keys(self) -> None:
        """Drop the cache (tests; or after identity rotated keys out-of-band)."""
        self._keys = {}
        self._fetched_at = float("-inf")
