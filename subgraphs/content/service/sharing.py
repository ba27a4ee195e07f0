"""Shares: read, write or manage permission for a user or a role, with an optional expiry."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, NotFound
from subgraphs.content.models import Document, DocumentShare, Permission
from subgraphs.content.service import audit, events
from subgraphs.content.service.documents import commit_change, lock_document
from subgraphs.content.service.resources import Resources

ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _describe(share: DocumentShare) -> dict[str, object]:
    return {
        "share_id": str(share.id),
        "user_id": str(share.user_id) if share.user_id else None,
        "role": share.role,
        "permission": str(share.permission),
        "expires_at": share.expires_at.isoformat() if share.expires_at else None,
    }


async def share_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    permission: Permission,
    user_id: uuid.UUID | None = None,
    role: str | None = None,
    expires_at: datetime | None = None,
) -> DocumentShare:
    """Grant access to exactly one of a user or a role; sharing again replaces the grant."""
    caller = require_user(principal)
    if (user_id is None) == (role is None):
        raise BadInput("share with exactly one of a user or a role", field="userId")
    if role is not None and not ROLE.match(role):
        raise BadInput("not a role name", field="role")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise BadInput("expiresAt needs a time zone", field="expiresAt")
        if expires_at <= utcnow():
            raise BadInput("expiresAt is in the past", field="expiresAt")
    document = await lock_document(session, caller, document_id, Permission.MANAGE)
    if user_id == document.owner_id:
        raise BadInput("the owner already has every permission", field="userId")
    grantee = (
        DocumentShare.user_id == user_id if user_id is not None else DocumentShare.role == role
    )
    share = await session.scalar(
        select(DocumentShare).where(DocumentShare.document_id == document_id, grantee)
    )
    before = _describe(share) if share else None
    if share is None:
        share = DocumentShare(
            id=uuid.uuid4(),
            document_id=document_id,
            user_id=user_id,
            role=role,
            created_by=caller.user_id,
            created_at=utcnow(),
            permission=permission,
        )
        session.add(share)
    share.permission = permission
    share.expires_at = expires_at
    document.version += 1
    if user_id is not None:  # a role has no one to tell
        events.emit(
            session,
            events.DOCUMENT_SHARED,
            document_id=document_id,
            document_title=document.title,
            grantee_id=user_id,
            permission=permission.value,
            shared_by=caller.user_id,
        )
    await commit_change(
        session,
        resources,
        document,
        audit.SHARED,
        actor=caller,
        client=client,
        changes={"share": {"before": before, "after": _describe(share)}},
    )
    return share


async def unshare_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    share_id: uuid.UUID,
) -> Document:
    caller = require_user(principal)
    document = await lock_document(session, caller, document_id, Permission.MANAGE)
    share = await session.scalar(
        select(DocumentShare).where(
            DocumentShare.id == share_id, DocumentShare.document_id == document_id
        )
    )
    if share is None:
        raise NotFound("share not found")
    before = _describe(share)
    await session.execute(delete(DocumentShare).where(DocumentShare.id == share_id))
    document.version += 1
    await commit_change(
        session,
        resources,
        document,
        audit.UNSHARED,
        actor=caller,
        client=client,
        changes={"share": {"before": before, "after": None}},
    )
    return document


async def list_shares(
    session: AsyncSession, *, principal: Principal | None, document_id: uuid.UUID
) -> list[DocumentShare]:
    """Who a document is shared with: for those who may manage it."""
    caller = require_user(principal)
    await lock_document(session, caller, document_id, Permission.MANAGE, lock=False)
    return list(
        (
            await session.scalars(
                select(DocumentShare)
                .where(DocumentShare.document_id == document_id)
                .order_by(DocumentShare.created_at)
            )
        ).all()
    )
