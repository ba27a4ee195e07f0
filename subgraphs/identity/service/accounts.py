"""Accounts: registration, email verification, passwords, activation, lookup."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, SessionRevocations, require_scope, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.dataloaders import ordered
from subgraphs.common.errors import BadInput, Conflict, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.identity import security
from subgraphs.identity.models import EmailToken, OutboxEvent, RoleAssignment, User
from subgraphs.identity.roles import USERS_READ, USERS_WRITE
from subgraphs.identity.service import audit
from subgraphs.identity.service.sessions import revoke_user_sessions
from subgraphs.identity.settings import IdentitySettings

MAX_DISPLAY_NAME = 200
VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise BadInput(f"email is not valid: {error}", field="email") from None


def clean_display_name(display_name: str) -> str:
    display_name = display_name.strip()
    if not display_name or len(display_name) > MAX_DISPLAY_NAME:
        raise BadInput(
            f"displayName must be 1 to {MAX_DISPLAY_NAME} characters", field="displayName"
        )
    return display_name


async def register(
    session: AsyncSession,
    *,
    settings: IdentitySettings,
    email: str,
    password: str,
    display_name: str,
    client: ClientInfo,
) -> User:
    """A new account, unverified; the verification email is queued with it."""
    email = normalize_email(email)
    display_name = clean_display_name(display_name)
    security.check_password_policy(password, email=email)
    if await session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise Conflict("a user with this email already exists", field="email")
    user = User(
        email=email,
        display_name=display_name,
        password_hash=security.hash_password(password),
        password_changed_at=utcnow(),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent registration won the race for this email
        await session.rollback()
        raise Conflict("a user with this email already exists", field="email") from None
    session.add(RoleAssignment(user_id=user.id, role="member"))
    _mail_token(session, settings, user, VERIFY_EMAIL)
    audit.record(
        session, audit.USER_REGISTERED, client=client, actor_id=user.id, target_user_id=user.id
    )
    await session.commit()
    return user


def _mail_token(
    session: AsyncSession, settings: IdentitySettings, user: User, purpose: str
) -> None:
    """Create a single-use token and queue the email that carries it (outbox)."""
    token = security.new_token()
    lifetime = (
        timedelta(hours=settings.email_verification_hours)
        if purpose == VERIFY_EMAIL
        else timedelta(minutes=settings.password_reset_minutes)
    )
    expires_at = utcnow() + lifetime
    session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=security.token_hash(token),
            expires_at=expires_at,
        )
    )
    payload: dict[str, Any] = {
        "user_id": str(user.id),
        "email": user.email,
        "display_name": user.display_name,
        "token": token,
        "expires_at": expires_at.isoformat(),
    }
    session.add(OutboxEvent(type=f"identity.{purpose}_requested", payload=payload))


async def _consume_token(session: AsyncSession, token: str, purpose: str) -> User:
    """The user a valid, unused, unexpired token belongs to; the token is used up."""
    used = await session.scalar(
        update(EmailToken)
        .where(
            EmailToken.token_hash == security.token_hash(token.strip()),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
        .returning(EmailToken.user_id)
    )
    if used is None:
        raise BadInput("this link is invalid, expired or already used", field="token")
    user = await session.get(User, used)
    assert user is not None
    return user


async def request_email_verification(
    session: AsyncSession, *, settings: IdentitySettings, principal: Principal | None
) -> None:
    user = await get_user(session, require_user(principal).user_id)
    if user.email_verified_at is None:
        _mail_token(session, settings, user, VERIFY_EMAIL)
        await session.commit()


async def verify_email(session: AsyncSession, *, token: str, client: ClientInfo) -> User:
    user = await _consume_token(session, token, VERIFY_EMAIL)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    audit.record(session, audit.EMAIL_VERIFIED, client=client, target_user_id=user.id)
    await session.commit()
    return user


async def request_password_reset(
    session: AsyncSession, *, settings: IdentitySettings, email: str
) -> None:
    """Queue a reset email if the account exists; the caller learns nothing either way."""
    try:
        email = normalize_email(email)
    except BadInput:
        return
    user = await session.scalar(select(User).where(func.lower(User.email) == email))
    if user is not None and user.is_active:
        _mail_token(session, settings, user, RESET_PASSWORD)
        await session.commit()


async def reset_password(
    session: AsyncSession,
    *,
    token: str,
    new_password: str,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> None:
    user = await _consume_token(session, token, RESET_PASSWORD)
    security.check_password_policy(new_password, email=user.email)
    await _set_password(session, user, new_password)
    ended = await revoke_user_sessions(session, user.id, reason="password_reset", client=client)
    audit.record(session, audit.PASSWORD_RESET, client=client, target_user_id=user.id)
    await session.commit()
    await revocations.revoke(ended, reason="password_reset")


async def change_password(
    session: AsyncSession,
    *,
    principal: Principal | None,
    current_password: str,
    new_password: str,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> None:
    """New password; every other session of the user is signed out."""
    caller = require_user(principal)
    user = await get_user(session, caller.user_id)
    if not security.verify_password(user.password_hash, current_password):
        raise BadInput("the current password is not correct", field="currentPassword")
    security.check_password_policy(new_password, email=user.email)
    await _set_password(session, user, new_password)
    ended = await revoke_user_sessions(
        session, user.id, reason="password_changed", client=client, keep=caller.session_id
    )
    audit.record(
        session, audit.PASSWORD_CHANGED, client=client, actor_id=user.id, target_user_id=user.id
    )
    await session.commit()
    await revocations.revoke(ended, reason="password_changed")


async def _set_password(session: AsyncSession, user: User, password: str) -> None:
    user.password_hash = security.hash_password(password)
    user.password_changed_at = utcnow()


async def set_active(
    session: AsyncSession,
    *,
    principal: Principal | None,
    user_id: uuid.UUID,
    active: bool,
    client: ClientInfo,
    revocations: SessionRevocations,
) -> User:
    """Deactivate (sign out everywhere, no login, no refresh) or reactivate a user."""
    admin = require_scope(principal, USERS_WRITE)
    user = await get_user(session, user_id)
    if user.id == admin.user_id and not active:
        raise BadInput("you cannot deactivate yourself", field="id")
    ended: list[uuid.UUID] = []
    if user.is_active != active:
        user.is_active = active
        if not active:
            ended = await revoke_user_sessions(
                session, user.id, reason="deactivated", client=client
            )
        audit.record(
            session,
            audit.USER_REACTIVATED if active else audit.USER_DEACTIVATED,
            client=client,
            actor_id=admin.user_id,
            target_user_id=user.id,
        )
        await session.commit()
        await revocations.revoke(ended, reason="deactivated")
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def read_user(
    session: AsyncSession, *, principal: Principal | None, user_id: uuid.UUID
) -> User:
    """A user's full record: for the user themselves or a holder of users:read."""
    caller = require_user(principal)
    if caller.user_id != user_id:
        require_scope(caller, USERS_READ)
    return await get_user(session, user_id)


async def users_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[User | None]:
    rows = (await session.scalars(select(User).where(User.id.in_(set(ids))))).all()
    return ordered(ids, rows, key=lambda user: user.id)


async def list_users(
    session: AsyncSession,
    *,
    principal: Principal | None,
    first: int,
    after: str | None,
    email_contains: str | None = None,
    active: bool | None = None,
    organization_id: uuid.UUID | None = None,
    role: str | None = None,
) -> Page[User]:
    require_scope(principal, USERS_READ)
    stmt = select(User)
    if email_contains:
        stmt = stmt.where(User.email.icontains(email_contains.strip().lower(), autoescape=True))
    if active is not None:
        stmt = stmt.where(User.is_active.is_(active))
    if organization_id is not None or role is not None:
        member = select(RoleAssignment.user_id)
        if organization_id is not None:
            member = member.where(RoleAssignment.organization_id == organization_id)
        if role is not None:
            member = member.where(RoleAssignment.role == role)
        stmt = stmt.where(User.id.in_(member))
    return await keyset_page(session, stmt, User, first=first, after=after)
