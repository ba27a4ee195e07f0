"""Identity's signing keys: RS256 key pairs kept in its database.

The newest key signs. When it is older than the rotation period a new one is made and
the old one retired: it signs nothing more but stays in the JWKS until every token it
signed has expired, so rotation never invalidates a live token. Keys survive restarts.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.database import utcnow
from subgraphs.identity.models import SigningKey
from subgraphs.identity.settings import IdentitySettings

ALGORITHM = "RS256"
# Serializes key creation across replicas: two processes must not both rotate.
ROTATION_LOCK = 0x48554249  # "HUBI"

_private_keys: dict[str, rsa.RSAPrivateKey] = {}


def _generate() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = uuid.uuid4().hex
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return SigningKey(kid=kid, private_pem=pem, public_jwk=public_jwk, created_at=utcnow())


async def current_key(session: AsyncSession, settings: IdentitySettings) -> SigningKey:
    """The key that signs now, made (and the previous one retired) when due."""
    key = await _newest_active(session)
    if key is not None and not _due(key, settings):
        return key
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ROTATION_LOCK})
    key = await _newest_active(session)  # another process may have rotated meanwhile
    if key is None or _due(key, settings):
        key = await _rotate(session)
    await session.commit()  # also releases the lock
    return key


async def rotate(session: AsyncSession) -> SigningKey:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ROTATION_LOCK})
    key = await _rotate(session)
    await session.commit()
    return key


async def _rotate(session: AsyncSession) -> SigningKey:
    key = _generate()
    await session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=key.created_at)
    )
    session.add(key)
    await session.flush()
    return key


async def _newest_active(session: AsyncSession) -> SigningKey | None:
    return await session.scalar(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc())
        .limit(1)
    )


def _due(key: SigningKey, settings: IdentitySettings) -> bool:
    return utcnow() - key.created_at >= timedelta(days=settings.signing_key_rotation_days)


async def jwks(session: AsyncSession, settings: IdentitySettings) -> dict[str, Any]:
    """Public keys that may have signed a token still valid now."""
    oldest_valid = utcnow() - timedelta(seconds=settings.access_token_seconds + 60)
    keys = (
        await session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > oldest_valid))
            .order_by(SigningKey.created_at.desc())
        )
    ).all()
    return {"keys": [key.public_jwk for key in keys]}


def sign(key: SigningKey, claims: dict[str, Any]) -> str:
    private = _private_keys.get(key.kid)
    if private is None:
        loaded = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey), "identity only makes RSA keys"
        private = _private_keys[key.kid] = loaded
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key.kid})


def timestamp(moment: datetime) -> int:
    return int(moment.timestamp())
