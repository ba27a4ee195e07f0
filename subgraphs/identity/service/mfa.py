"""Multi-factor authentication: TOTP with single-use recovery codes.

Enrollment gives a secret (and an otpauth:// URI for authenticator apps); MFA is on only
once a code from the app confirms it. A TOTP code is accepted at most once: its time
step must be newer than the last one accepted, checked and recorded in one UPDATE.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, Conflict, Unauthenticated
from subgraphs.common.redis import Namespace
from subgraphs.identity import security
from subgraphs.identity.models import RecoveryCode, User
from subgraphs.identity.roles import Role
from subgraphs.identity.service import audit
from subgraphs.identity.service.accounts import get_user
from subgraphs.identity.service.sessions import (
    TokenPair,
    end_challenge,
    start_session,
    user_of_challenge,
)
from subgraphs.identity.settings import IdentitySettings
from subgraphs.identity.throttle import Throttle, account_key

BAD_CODE = "the code is not valid"


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str
    otpauth_uri: str


async def start_enrollment(session: AsyncSession, *, principal: Principal | None) -> TotpEnrollment:
    user = await get_user(session, require_user(principal).user_id)
    if user.mfa_enabled:
        raise Conflict("MFA is already on; disable it first to enroll a new authenticator")
    user.totp_secret = security.new_totp_secret()
    await session.commit()
    return TotpEnrollment(user.totp_secret, security.totp_uri(user.totp_secret, user.email))


async def confirm_enrollment(
    session: AsyncSession, *, principal: Principal | None, code: str, client: ClientInfo
) -> list[str]:
    """Turn MFA on with a first valid code; returns the recovery codes, shown only now."""
    user = await get_user(session, require_user(principal).user_id)
    if user.mfa_enabled:
        raise Conflict("MFA is already on")
    if user.totp_secret is None:
        raise BadInput("start the enrollment first", field="code")
    if not await _accept_totp(session, user, code):
        raise BadInput(BAD_CODE, field="code")
    user.totp_confirmed_at = utcnow()
    codes = await _replace_recovery_codes(session, user)
    audit.record(
        session, audit.MFA_ENABLED, client=client, actor_id=user.id, target_user_id=user.id
    )
    await session.commit()
    return codes


async def verify_login(
    session: AsyncSession,
    *,
    redis: Namespace,
    settings: IdentitySettings,
    roles: dict[str, Role],
    mfa_token: str,
    code: str,
    client: ClientInfo,
) -> TokenPair:
    """The second step of login: a TOTP or recovery code exchanges the challenge for tokens."""
    user_id = await user_of_challenge(redis, mfa_token)
    throttle = Throttle(redis, settings)
    account = account_key("mfa", str(user_id))
    await throttle.check(account, client.ip)
    user = await get_user(session, user_id)
    if not user.is_active or not user.mfa_enabled:
        raise Unauthenticated("the MFA challenge is no longer valid; sign in again")
    method = "totp"
    accepted = await _accept_totp(session, user, code)
    if not accepted and await _use_recovery_code(session, user, code):
        accepted, method = True, "recovery_code"
        audit.record(
            session,
            audit.RECOVERY_CODE_USED,
            client=client,
            actor_id=user.id,
            target_user_id=user.id,
        )
    if not accepted:
        await throttle.failed(account, client.ip)
        audit.record(session, audit.MFA_FAILED, client=client, target_user_id=user.id)
        await session.commit()
        raise Unauthenticated(BAD_CODE)
    await throttle.succeeded(account)
    await end_challenge(redis, mfa_token)
    return await start_session(
        session, settings=settings, roles=roles, user=user, client=client, method=method
    )


async def regenerate_recovery_codes(
    session: AsyncSession, *, principal: Principal | None, code: str, client: ClientInfo
) -> list[str]:
    """New recovery codes (the old ones stop working); needs a current TOTP code."""
    user = await get_user(session, require_user(principal).user_id)
    if not user.mfa_enabled:
        raise BadInput("MFA is not on", field="code")
    if not await _accept_totp(session, user, code):
        raise BadInput(BAD_CODE, field="code")
    codes = await _replace_recovery_codes(session, user)
    audit.record(
        session,
        audit.RECOVERY_CODES_REGENERATED,
        client=client,
        actor_id=user.id,
        target_user_id=user.id,
    )
    await session.commit()
    return codes


async def disable(
    session: AsyncSession,
    *,
    principal: Principal | None,
    code: str | None,
    password: str | None,
    client: ClientInfo,
) -> None:
    """Turn MFA off; proven by a current TOTP code or the account's password."""
    user = await get_user(session, require_user(principal).user_id)
    if not user.mfa_enabled:
        raise BadInput("MFA is not on", field="code")
    if code:
        proven = await _accept_totp(session, user, code)
    elif password:
        proven = security.verify_password(user.password_hash, password)
    else:
        raise BadInput("give a current code or your password", field="code")
    if not proven:
        raise BadInput("the code or password is not correct", field="code" if code else "password")
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(
        session, audit.MFA_DISABLED, client=client, actor_id=user.id, target_user_id=user.id
    )
    await session.commit()


async def _accept_totp(session: AsyncSession, user: User, code: str) -> bool:
    if user.totp_secret is None:
        return False
    step = security.totp_step(user.totp_secret, code)
    if step is None:
        return False
    accepted = await session.scalar(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    if accepted is not None:
        user.totp_last_step = step
    return accepted is not None


async def _use_recovery_code(session: AsyncSession, user: User, code: str) -> bool:
    used = await session.scalar(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == security.token_hash(security.normalize_recovery_code(code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .returning(RecoveryCode.id)
    )
    return used is not None


async def _replace_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = security.new_recovery_codes()
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=security.token_hash(code)) for code in codes
    )
    return codes
