"""Login, tokens and sessions.

A session is one login on one device. It holds a family of refresh tokens: each refresh
exchanges the presented token for a new one. Presenting a token that was already
exchanged means it leaked, so the whole family — that session, not the user's others —
is revoked. Access tokens are short-lived JWTs that services verify on their own; a
revoked session is announced to them once committed (`SessionRevocations.revoke`), so its
access tokens stop working everywhere at once and its open subscriptions end.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, SessionRevocations, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.errors import Forbidden, NotFound, TooManyRequests, Unauthenticated
from subgraphs.common.redis import Namespace
from subgraphs.identity import keys, security
from subgraphs.identity.models import RefreshToken, Session, User
from subgraphs.identity.roles import Role
from subgraphs.identity.service import audit
from subgraphs.identity.service.access import claims_for
from subgraphs.identity.settings import IdentitySettings
from subgraphs.identity.throttle import Throttle, account_key

BAD_CREDENTIALS = "the email or password is incorrect"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    token_type: str = "bearer"


@dataclass(frozen=True)
class MfaChallenge:
    mfa_token: str
    expires_in: int


def _challenge_key(redis: Namespace, token: str) -> str:
    return redis.key("mfa-challenge", security.token_hash(token))


async def login(
    session: AsyncSession,
    *,
    redis: Namespace,
    settings: IdentitySettings,
    roles: dict[str, Role],
    email: str,
    password: str,
    client: ClientInfo,
) -> TokenPair | MfaChallenge:
    """Check the password; tokens, or an MFA challenge for a user with MFA on.

    Whether the email exists never shows: an unknown email costs the same hash
    verification and gets the same answer as a wrong password.
    """
    normalized = email.strip().lower()
    throttle = Throttle(redis, settings)
    account = account_key("login", normalized)
    try:
        await throttle.check(account, client.ip)
    except TooManyRequests:
        audit.record(session, audit.LOGIN_THROTTLED, client=client, email=normalized)
        await session.commit()
        raise
    user = await session.scalar(select(User).where(func.lower(User.email) == normalized))
    if not security.verify_password(user.password_hash if user else None, password):
        await throttle.failed(account, client.ip)
        audit.record(
            session,
            audit.LOGIN_FAILED,
            client=client,
            target_user_id=user.id if user else None,
            email=normalized,
        )
        await session.commit()
        raise Unauthenticated(BAD_CREDENTIALS)
    assert user is not None and user.password_hash is not None
    if not user.is_active:
        raise Forbidden("this account is deactivated")
    await throttle.succeeded(account)
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    if user.mfa_enabled:
        await session.commit()
        token = security.new_token()
        await redis.client.set(
            _challenge_key(redis, token),
            json.dumps({"user_id": str(user.id)}),
            ex=settings.mfa_challenge_seconds,
        )
        return MfaChallenge(mfa_token=token, expires_in=settings.mfa_challenge_seconds)
    return await start_session(session, settings=settings, roles=roles, user=user, client=client)


async def user_of_challenge(redis: Namespace, mfa_token: str) -> uuid.UUID:
    raw = await redis.client.get(_challenge_key(redis, mfa_token.strip()))
    if raw is None:
        raise Unauthenticated("the MFA challenge is invalid or has expired; sign in again")
    return uuid.UUID(json.loads(raw)["user_id"])


async def end_challenge(redis: Namespace, mfa_token: str) -> None:
    await redis.client.delete(_challenge_key(redis, mfa_token.strip()))


async def start_session(
    session: AsyncSession,
    *,
    settings: IdentitySettings,
    roles: dict[str, Role],
    user: User,
    client: ClientInfo,
    method: str = "password",
) -> TokenPair:
    now = utcnow()
    login_session = Session(
        user_id=user.id,
        user_agent=client.user_agent,
        ip=client.ip,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(days=settings.refresh_token_days),
    )
    session.add(login_session)
    await session.flush()
    audit.record(
        session,
        audit.LOGIN_SUCCEEDED,
        client=client,
        actor_id=user.id,
        target_user_id=user.id,
        session_id=login_session.id,
        method=method,
    )
    return await _issue(
        session, settings=settings, roles=roles, user=user, login_session=login_session
    )


async def _issue(
    session: AsyncSession,
    *,
    settings: IdentitySettings,
    roles: dict[str, Role],
    user: User,
    login_session: Session,
) -> TokenPair:
    refresh = security.new_token()
    session.add(RefreshToken(session_id=login_session.id, token_hash=security.token_hash(refresh)))
    claims = await claims_for(session, user.id, roles)
    key = await keys.current_key(session, settings)
    await session.commit()  # the session, its token and whatever led here, together
    now = utcnow()
    access = keys.sign(
        key,
        {
            "iss": settings.hub.jwt_issuer,
            "aud": settings.hub.jwt_audience,
            "sub": str(user.id),
            "sid": str(login_session.id),
            "jti": uuid.uuid4().hex,
            "iat": keys.timestamp(now),
            "nbf": keys.timestamp(now),
            "exp": keys.timestamp(now + timedelta(seconds=settings.access_token_seconds)),
            "typ": "access",
            "email": user.email,
            "roles": claims.roles,
            "orgs": claims.organizations,
            "scope": claims.scope,
        },
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_seconds,
        session_id=login_session.id,
    )


async def refresh(
    session: AsyncSession,
    *,
    settings: IdentitySettings,
    roles: dict[str, Role],
    refresh_token: str,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> TokenPair:
    """Exchange a refresh token for new tokens; a reused token revokes its session."""
    presented = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == security.token_hash(refresh_token.strip()))
        .with_for_update()
    )
    if presented is None:
        raise Unauthenticated("the refresh token is invalid")
    login_session = await session.get(Session, presented.session_id, with_for_update=True)
    assert login_session is not None
    if presented.rotated_at is not None:
        if login_session.revoked_at is None:
            _revoke(login_session, "refresh_token_reused")
            audit.record(
                session,
                audit.REFRESH_TOKEN_REUSED,
                client=client,
                target_user_id=login_session.user_id,
                session_id=login_session.id,
            )
            await session.commit()
            await revocations.revoke([login_session.id], reason="refresh_token_reused")
        raise Unauthenticated("the refresh token was already used; the session is revoked")
    if login_session.revoked_at is not None or login_session.expires_at <= utcnow():
        raise Unauthenticated("the session has ended; sign in again")
    user = await session.get(User, login_session.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("the account is deactivated")
    presented.rotated_at = utcnow()
    login_session.last_used_at = utcnow()
    login_session.ip = client.ip or login_session.ip
    login_session.user_agent = client.user_agent or login_session.user_agent
    return await _issue(
        session, settings=settings, roles=roles, user=user, login_session=login_session
    )


def _revoke(login_session: Session, reason: str) -> None:
    login_session.revoked_at = utcnow()
    login_session.revoked_reason = reason


async def logout(
    session: AsyncSession,
    *,
    principal: Principal | None,
    refresh_token: str | None,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> None:
    """End a session: the one the refresh token belongs to, else the caller's current one."""
    session_id: uuid.UUID | None = None
    if refresh_token:
        session_id = await session.scalar(
            select(RefreshToken.session_id).where(
                RefreshToken.token_hash == security.token_hash(refresh_token.strip())
            )
        )
        if session_id is None:
            raise Unauthenticated("the refresh token is invalid")
    elif principal is not None:
        session_id = principal.session_id
    if session_id is None:
        raise Unauthenticated("sign in, or give the refresh token of the session to end")
    login_session = await session.get(Session, session_id)
    if login_session is not None and login_session.revoked_at is None:
        _revoke(login_session, "logout")
        audit.record(
            session,
            audit.SESSION_REVOKED,
            client=client,
            actor_id=login_session.user_id,
            target_user_id=login_session.user_id,
            session_id=session_id,
            reason="logout",
        )
        await session.commit()
        await revocations.revoke([session_id], reason="logout")


async def list_sessions(session: AsyncSession, *, principal: Principal | None) -> list[Session]:
    """The caller's sessions that can still be used, most recently used first."""
    caller = require_user(principal)
    return list(
        (
            await session.scalars(
                select(Session)
                .where(
                    Session.user_id == caller.user_id,
                    Session.revoked_at.is_(None),
                    Session.expires_at > utcnow(),
                )
                .order_by(Session.last_used_at.desc())
            )
        ).all()
    )


async def revoke_session(
    session: AsyncSession,
    *,
    principal: Principal | None,
    session_id: uuid.UUID,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> None:
    caller = require_user(principal)
    login_session = await session.get(Session, session_id)
    if login_session is None or login_session.user_id != caller.user_id:
        raise NotFound("session not found")
    if login_session.revoked_at is None:
        _revoke(login_session, "revoked_by_user")
        audit.record(
            session,
            audit.SESSION_REVOKED,
            client=client,
            actor_id=caller.user_id,
            target_user_id=caller.user_id,
            session_id=session_id,
            reason="revoked_by_user",
        )
        await session.commit()
        await revocations.revoke([session_id], reason="revoked_by_user")


async def revoke_user_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    reason: str,
    client: ClientInfo,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke every live session of a user but `keep`; the caller commits, then announces
    the returned ids (`SessionRevocations.revoke`)."""
    stmt = (
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .returning(Session.id)
    )
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    revoked = (await session.scalars(stmt)).all()
    for session_id in revoked:
        audit.record(
            session,
            audit.SESSION_REVOKED,
            client=client,
            target_user_id=user_id,
            session_id=session_id,
            reason=reason,
        )
    return list(revoked)
