"""Credentials: password hashing and policy, one-time secrets, TOTP.

Everything secret that is stored is stored hashed: passwords with argon2id (slow, salted),
random tokens and recovery codes with SHA-256 (they carry 160+ bits of entropy, so a
fast hash is enough and lets them be looked up by hash).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from subgraphs.common.errors import BadInput

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte password is an attack
TOTP_STEP_SECONDS = 30
TOTP_ISSUER = "Hub"
RECOVERY_CODE_COUNT = 10

hasher = PasswordHasher()  # argon2id with the RFC 9106 low-memory parameters
# Verified against when an email is unknown, so that both cases take as long.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, shipped with zxcvbn."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(password: str, *, email: str | None = None) -> None:
    """Raise BadInput naming the rule the password breaks."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters long",
            field="password",
            rule="min_length",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadInput(
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters long",
            field="password",
            rule="max_length",
        )
    lowered = password.lower()
    # "Password2024!" is "password" with decorations: strip leading/trailing digits and
    # punctuation before looking it up.
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered)
    common = common_passwords()
    if lowered in common or (len(core) >= 4 and core in common) or len(set(lowered)) < 4:
        raise BadInput(
            "the password is too common or too easy to guess; choose another",
            field="password",
            rule="common",
        )
    local = (email or "").split("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        raise BadInput(
            "the password must not contain your email address", field="password", rule="email"
        )


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher.check_needs_rehash(stored_hash)


def new_token() -> str:
    """An opaque, URL-safe secret (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7q2m-x9fpa` (50 bits each, unambiguous letters and digits)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalize_recovery_code(code: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]", "", code.lower())
    return f"{cleaned[:5]}-{cleaned[5:]}"


def new_totp_secret() -> str:
    return pyotp.random_base32(length=32)


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step `code` is valid for (one step of clock drift either way), or None."""
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // TOTP_STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
