"""The security event log: who did what to whom, from where, in which request."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.client import ClientInfo
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.identity.models import OutboxEvent, SecurityEvent

LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
MFA_FAILED = "mfa.failed"
MFA_ENABLED = "mfa.enabled"
MFA_DISABLED = "mfa.disabled"
RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
RECOVERY_CODE_USED = "mfa.recovery_code_used"
PASSWORD_CHANGED = "password.changed"
PASSWORD_RESET = "password.reset"
EMAIL_VERIFIED = "email.verified"
SESSION_REVOKED = "session.revoked"
REFRESH_TOKEN_REUSED = "session.refresh_token_reused"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
USER_REGISTERED = "user.registered"
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
SIGNING_KEY_ROTATED = "signing_key.rotated"

# Changes the account holder is told about (communication sends a security alert), in case
# it was not them.
ALERTS = frozenset(
    {MFA_ENABLED, MFA_DISABLED, PASSWORD_CHANGED, PASSWORD_RESET, REFRESH_TOKEN_REUSED}
)


def record(
    session: AsyncSession,
    type: str,
    *,
    client: ClientInfo,
    actor_id: uuid.UUID | None = None,
    target_user_id: uuid.UUID | None = None,
    **details: Any,
) -> SecurityEvent:
    """Add the event to the session: it is stored with the change it describes."""
    event = SecurityEvent(
        type=type,
        actor_id=actor_id,
        target_user_id=target_user_id,
        ip=client.ip,
        user_agent=client.user_agent,
        request_id=client.request_id,
        details={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in details.items()},
    )
    session.add(event)
    if type in ALERTS and target_user_id is not None:
        session.add(
            OutboxEvent(
                type="identity.security_alert",
                payload={
                    "user_id": str(target_user_id),
                    "alert": type,
                    "ip": client.ip,
                    "user_agent": client.user_agent,
                },
            )
        )
    return event


async def list_events(
    session: AsyncSession,
    *,
    first: int,
    after: str | None,
    user_id: uuid.UUID | None = None,
    type: str | None = None,
) -> Page[SecurityEvent]:
    stmt = select(SecurityEvent)
    if user_id is not None:
        stmt = stmt.where(
            (SecurityEvent.target_user_id == user_id) | (SecurityEvent.actor_id == user_id)
        )
    if type:
        stmt = stmt.where(SecurityEvent.type == type)
    return await keyset_page(session, stmt, SecurityEvent, first=first, after=after)
