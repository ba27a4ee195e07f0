"""Direct and group conversations, their messages and read receipts.

A member's read receipt is one instant (`last_read_at`): every message up to it is read.
Attachments are Document ids; the documents stay in content, which decides who may read
them when the graph resolves `Message.attachments`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, Forbidden, NotFound
from subgraphs.common.pagination import Page, PageKey, keyset_page, pages_per_parent
from subgraphs.communication.models import (
    Conversation,
    ConversationKind,
    ConversationMember,
    MemberRole,
    Message,
)

MAX_MEMBERS = 100
MAX_TITLE = 200
MAX_MESSAGE = 10_000
MAX_ATTACHMENTS = 10


def messages_channel(user_id: uuid.UUID | str) -> str:
    """Redis channel on which messages for a user's conversations are announced."""
    return f"messages:{user_id}"


async def start_conversation(
    session: AsyncSession,
    principal: Principal | None,
    *,
    member_ids: Sequence[uuid.UUID],
    title: str | None = None,
) -> Conversation:
    """A direct conversation with one other user (the same one again if it exists), or a group."""
    caller = require_user(principal)
    others = [m for m in dict.fromkeys(member_ids) if m != caller.user_id]
    if not others:
        raise BadInput("name at least one other member", field="memberIds")
    if len(others) + 1 > MAX_MEMBERS:
        raise BadInput(f"a conversation has at most {MAX_MEMBERS} members", field="memberIds")
    if title is not None and (not title.strip() or len(title) > MAX_TITLE):
        raise BadInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    direct = len(others) == 1 and title is None
    key = ":".join(sorted([str(caller.user_id), str(others[0])])) if direct else None
    if key is not None:
        existing = await session.scalar(select(Conversation).where(Conversation.direct_key == key))
        if existing is not None:
            return existing
    conversation = Conversation(
        id=uuid.uuid4(),
        kind=ConversationKind.DIRECT if direct else ConversationKind.GROUP,
        title=title.strip() if title else None,
        created_by=caller.user_id,
        direct_key=key,
    )
    session.add(conversation)
    await session.flush()
    session.add(
        ConversationMember(
            conversation_id=conversation.id,
            user_id=caller.user_id,
            # A group's creator manages its members; a direct conversation's are fixed.
            role=MemberRole.MEMBER if direct else MemberRole.ADMIN,
        )
    )
    session.add_all(
        ConversationMember(conversation_id=conversation.id, user_id=user_id) for user_id in others
    )
    try:
        await session.commit()
    except IntegrityError:  # the same direct conversation, started concurrently
        await session.rollback()
        found = await session.scalar(select(Conversation).where(Conversation.direct_key == key))
        if found is None:
            raise
        return found
    return conversation


async def _membership(
    session: AsyncSession, caller: Principal, conversation_id: uuid.UUID
) -> ConversationMember:
    member = await session.get(ConversationMember, (conversation_id, caller.user_id))
    if member is None:  # not a member: as if it did not exist
        raise NotFound("conversation not found")
    return member


async def _group(
    session: AsyncSession, caller: Principal, conversation_id: uuid.UUID
) -> tuple[Conversation, ConversationMember]:
    """A group conversation the caller is in (locked: membership changes one at a time)."""
    member = await _membership(session, caller, conversation_id)
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NotFound("conversation not found")
    if conversation.kind != ConversationKind.GROUP:
        raise BadInput("a direct conversation keeps its two members", field="conversationId")
    return conversation, member


async def list_members(
    session: AsyncSession, principal: Principal | None, conversation_id: uuid.UUID
) -> list[ConversationMember]:
    caller = require_user(principal)
    await _membership(session, caller, conversation_id)
    return (await members_of_conversations(session, [conversation_id]))[0]


async def add_members(
    session: AsyncSession,
    principal: Principal | None,
    conversation_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
) -> list[ConversationMember]:
    """A group's admins add members (those already in stay as they are); the members now."""
    caller = require_user(principal)
    _, member = await _group(session, caller, conversation_id)
    if member.role != MemberRole.ADMIN:
        raise Forbidden("only the conversation's admins add members")
    if not member_ids:
        raise BadInput("name at least one member to add", field="memberIds")
    current = {m.user_id for m in (await members_of_conversations(session, [conversation_id]))[0]}
    new = [m for m in dict.fromkeys(member_ids) if m not in current]
    if len(current) + len(new) > MAX_MEMBERS:
        raise BadInput(f"a conversation has at most {MAX_MEMBERS} members", field="memberIds")
    session.add_all(ConversationMember(conversation_id=conversation_id, user_id=m) for m in new)
    await session.commit()
    return (await members_of_conversations(session, [conversation_id]))[0]


async def remove_member(
    session: AsyncSession,
    principal: Principal | None,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    """A member leaves (user_id is the caller), or an admin removes someone.

    Removed members no longer see the conversation nor hear of its messages. When the last
    admin leaves, the longest-standing member becomes admin; the last member to leave
    deletes the conversation.
    """
    caller = require_user(principal)
    _, member = await _group(session, caller, conversation_id)
    if user_id != caller.user_id and member.role != MemberRole.ADMIN:
        raise Forbidden("only the conversation's admins remove members")
    target = await session.get(ConversationMember, (conversation_id, user_id))
    if target is None:
        raise NotFound("no such member of the conversation")
    await session.delete(target)
    await session.flush()
    remaining = (await members_of_conversations(session, [conversation_id]))[0]
    if not remaining:
        await session.execute(delete(Conversation).where(Conversation.id == conversation_id))
    elif all(m.role != MemberRole.ADMIN for m in remaining):
        remaining[0].role = MemberRole.ADMIN
    await session.commit()


async def get_conversation(
    session: AsyncSession, principal: Principal | None, conversation_id: uuid.UUID
) -> Conversation:
    caller = require_user(principal)
    await _membership(session, caller, conversation_id)
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


async def list_conversations(
    session: AsyncSession, principal: Principal | None, *, first: int, after: str | None
) -> Page[Conversation]:
    caller = require_user(principal)
    mine = select(ConversationMember.conversation_id).where(
        ConversationMember.user_id == caller.user_id
    )
    stmt = select(Conversation).where(Conversation.id.in_(mine))
    return await keyset_page(session, stmt, Conversation, first=first, after=after)


async def send_message(
    session: AsyncSession,
    principal: Principal | None,
    *,
    conversation_id: uuid.UUID,
    body: str,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[Message, list[uuid.UUID]]:
    """Store the message (the sender has read it); it and the members to announce it to."""
    caller = require_user(principal)
    member = await _membership(session, caller, conversation_id)
    if not body.strip() and not attachment_ids:
        raise BadInput("a message needs a body or an attachment", field="body")
    if len(body) > MAX_MESSAGE:
        raise BadInput(f"body must be at most {MAX_MESSAGE} characters", field="body")
    attachments = list(dict.fromkeys(attachment_ids))
    if len(attachments) > MAX_ATTACHMENTS:
        raise BadInput(f"at most {MAX_ATTACHMENTS} attachments", field="attachmentIds")
    now = utcnow()
    message = Message(
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        sender_id=caller.user_id,
        body=body,
        attachment_ids=[str(a) for a in attachments],
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    member.last_read_at = now
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(last_message_at=now)
    )
    members = list(
        await session.scalars(
            select(ConversationMember.user_id).where(
                ConversationMember.conversation_id == conversation_id
            )
        )
    )
    await session.commit()
    return message, members


async def list_messages(
    session: AsyncSession,
    principal: Principal | None,
    *,
    conversation_id: uuid.UUID,
    first: int,
    after: str | None,
) -> Page[Message]:
    caller = require_user(principal)
    await _membership(session, caller, conversation_id)
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    return await keyset_page(session, stmt, Message, first=first, after=after)


async def messages_of_conversations(
    session: AsyncSession, keys: Sequence[PageKey]
) -> list[Page[Message]]:
    return await pages_per_parent(session, select(Message), Message, Message.conversation_id, keys)


async def mark_read(
    session: AsyncSession, principal: Principal | None, conversation_id: uuid.UUID
) -> Conversation:
    """The caller has read every message of the conversation so far."""
    caller = require_user(principal)
    member = await _membership(session, caller, conversation_id)
    member.last_read_at = utcnow()
    await session.commit()
    return await get_conversation(session, caller, conversation_id)


async def members_of_conversations(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID]
) -> list[list[ConversationMember]]:
    rows = (
        await session.scalars(
            select(ConversationMember)
            .where(ConversationMember.conversation_id.in_(conversation_ids))
            .order_by(ConversationMember.joined_at, ConversationMember.user_id)
        )
    ).all()
    grouped: dict[uuid.UUID, list[ConversationMember]] = {c: [] for c in conversation_ids}
    for row in rows:
        grouped.setdefault(row.conversation_id, []).append(row)
    return [grouped[c] for c in conversation_ids]


async def conversations_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[Conversation | None]:
    rows = {
        c.id: c for c in await session.scalars(select(Conversation).where(Conversation.id.in_(ids)))
    }
    return [rows.get(i) for i in ids]


async def unread_message_counts(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> list[int]:
    """Per (conversation, user): messages from others after the user's read receipt."""
    conversation_ids = {c for c, _ in keys}
    user_ids = {u for _, u in keys}
    rows = await session.execute(
        select(
            ConversationMember.conversation_id, ConversationMember.user_id, func.count(Message.id)
        )
        .join(Message, Message.conversation_id == ConversationMember.conversation_id)
        .where(
            ConversationMember.conversation_id.in_(conversation_ids),
            ConversationMember.user_id.in_(user_ids),
            Message.sender_id != ConversationMember.user_id,
            (ConversationMember.last_read_at.is_(None))
            | (Message.created_at > ConversationMember.last_read_at),
        )
        .group_by(ConversationMember.conversation_id, ConversationMember.user_id)
    )
    counts = {(c, u): n for c, u, n in rows.all()}
    return [counts.get(k, 0) for k in keys]


class MessageEvent(BaseModel):
    """A message as announced on Redis."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    body: str
    attachment_ids: list[str]
    created_at: datetime
    updated_at: datetime


def as_event(message: Message) -> dict[str, Any]:
    return MessageEvent.model_validate(message).model_dump(mode="json")


def from_event(event: dict[str, Any]) -> Message:
    return Message(**MessageEvent.model_validate(event).model_dump())
