"""Communication's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.auth import require_scope
from subgraphs.common.errors import BadInput
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.redis import Namespace
from subgraphs.common.rest import CursorPage, Session, SignedIn
from subgraphs.communication import tasks
from subgraphs.communication.models import Channel, DeliveryState, DeliveryStatus
from subgraphs.communication.service import conversations, delivery, notifications, preferences
from subgraphs.communication.service.notifications import NOTIFICATIONS_ADMIN, NOTIFICATIONS_SEND
from subgraphs.communication.settings import CommunicationSettings

router = APIRouter()
notifications_tag: list[str | Enum] = ["notifications"]
conversations_tag: list[str | Enum] = ["conversations"]


def _settings(request: Request) -> CommunicationSettings:
    return request.app.state.settings


def _redis(request: Request) -> Namespace:
    return request.app.state.redis


Settings = Annotated[CommunicationSettings, Depends(_settings)]
Redis = Annotated[Namespace, Depends(_redis)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    recipient_id: uuid.UUID
    category: str
    title: str
    body: str
    status: DeliveryStatus
    subject_type: str | None
    subject_id: uuid.UUID | None
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime


class NotificationIn(BaseModel):
    recipient_id: uuid.UUID
    title: str | None = Field(default=None, max_length=notifications.MAX_TITLE)
    body: str = Field(default="", max_length=notifications.MAX_BODY)
    template: str | None = Field(default=None, max_length=100)
    variables: dict[str, Any] | None = None
    category: str = Field(default="general", min_length=1, max_length=64)
    channels: list[Channel] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class UnreadCountOut(BaseModel):
    unread_count: int


class MarkAllIn(BaseModel):
    read: bool


class MarkedOut(BaseModel):
    marked_read: int


class PreferenceIo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    category: str = Field(min_length=1, max_length=64)
    channel: Channel
    enabled: bool = True
    digest_seconds: int | None = Field(default=None, ge=1)


class WebhookIn(BaseModel):
    url: str | None = Field(default=None, max_length=2000)


class WebhookOut(BaseModel):
    url: str | None
    secret: str | None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    notification_id: uuid.UUID
    recipient_id: uuid.UUID
    channel: Channel
    status: DeliveryState
    destination: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    dead_at: datetime | None
    created_at: datetime


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    title: str | None
    created_at: datetime
    last_message_at: datetime | None


class ConversationIn(BaseModel):
    member_ids: list[uuid.UUID] = Field(min_length=1, max_length=conversations.MAX_MEMBERS)
    title: str | None = Field(default=None, max_length=conversations.MAX_TITLE)


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    role: str
    joined_at: datetime
    last_read_at: datetime | None


class MembersIn(BaseModel):
    member_ids: list[uuid.UUID] = Field(min_length=1, max_length=conversations.MAX_MEMBERS)


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    body: str
    attachment_ids: list[uuid.UUID]
    created_at: datetime


class MessageIn(BaseModel):
    body: str = Field(default="", max_length=conversations.MAX_MESSAGE)
    attachment_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=conversations.MAX_ATTACHMENTS
    )


# --- notifications; the fixed paths come before /notifications/{id} ----------------------


@router.get("/notifications", tags=notifications_tag, response_model=CursorPage[NotificationOut])
async def list_notifications(
    session: Session,
    caller: SignedIn,
    recipient_id: uuid.UUID | None = None,
    unread_only: bool = False,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CursorPage[NotificationOut]:
    page = await notifications.list_notifications(
        session,
        caller,
        recipient_id=recipient_id,
        first=limit,
        after=cursor,
        unread_only=unread_only,
    )
    return CursorPage.of(page, NotificationOut)


@router.post(
    "/notifications", tags=notifications_tag, status_code=201, response_model=NotificationOut
)
async def send_notification(
    body: NotificationIn, session: Session, caller: SignedIn, settings: Settings, redis: Redis
) -> NotificationOut:
    if body.recipient_id != caller.user_id:
        require_scope(caller, NOTIFICATIONS_SEND)
    if body.template is None:
        if not body.title:
            raise BadInput("give a title or a template", field="title")
        template, variables = "generic", {"title": body.title.strip(), "body": body.body}
    else:
        template, variables = body.template, body.variables or {}
    sent = await notifications.send(
        session,
        settings,
        recipient_id=body.recipient_id,
        template_key=template,
        variables=variables,
        idempotency_key=body.idempotency_key or str(uuid.uuid4()),
        category=body.category.strip(),
        channels=[c.value for c in body.channels] if body.channels is not None else None,
        sender_id=caller.user_id,
    )
    await tasks.enqueue(session, sent, redis)
    return NotificationOut.model_validate(sent.notification)


@router.get("/notifications/unread-count", tags=notifications_tag, response_model=UnreadCountOut)
async def unread_count(session: Session, caller: SignedIn) -> UnreadCountOut:
    return UnreadCountOut(unread_count=await notifications.unread_count(session, caller))


@router.patch("/notifications", tags=notifications_tag, response_model=MarkedOut)
async def mark_all_read(body: MarkAllIn, session: Session, caller: SignedIn) -> MarkedOut:
    """`{"read": true}` marks every one of the caller's notifications read."""
    if not body.read:
        raise BadInput('only marking read is supported: {"read": true}', field="read")
    return MarkedOut(marked_read=await notifications.mark_all_read(session, caller))


@router.get("/notifications/preferences", tags=notifications_tag, response_model=list[PreferenceIo])
async def list_preferences(session: Session, caller: SignedIn) -> list[PreferenceIo]:
    rows = await preferences.list_preferences(session, caller)
    return [PreferenceIo.model_validate(r) for r in rows]


@router.put("/notifications/preferences", tags=notifications_tag, response_model=PreferenceIo)
async def set_preference(body: PreferenceIo, session: Session, caller: SignedIn) -> PreferenceIo:
    row = await preferences.set_preference(
        session,
        caller,
        category=body.category,
        channel=body.channel.value,
        enabled=body.enabled,
        digest_seconds=body.digest_seconds,
    )
    return PreferenceIo.model_validate(row)


@router.get("/notifications/webhook", tags=notifications_tag, response_model=WebhookOut)
async def get_webhook(session: Session, caller: SignedIn) -> WebhookOut:
    """Where the caller's webhook goes; its secret was shown only when it was set."""
    contact = await preferences.get_contact(session, caller)
    return WebhookOut(url=contact.webhook_url, secret=None)


@router.put("/notifications/webhook", tags=notifications_tag, response_model=WebhookOut)
async def set_webhook(
    body: WebhookIn, session: Session, caller: SignedIn, settings: Settings
) -> WebhookOut:
    contact, secret = await preferences.set_webhook(session, settings, caller, body.url)
    return WebhookOut(url=contact.webhook_url, secret=secret)


@router.get(
    "/notifications/dead-letters", tags=notifications_tag, response_model=CursorPage[DeliveryOut]
)
async def dead_letters(
    session: Session,
    caller: SignedIn,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CursorPage[DeliveryOut]:
    require_scope(caller, NOTIFICATIONS_ADMIN)
    page = await delivery.dead_letters(session, first=limit, after=cursor)
    return CursorPage.of(page, DeliveryOut)


@router.post(
    "/notifications/deliveries/{delivery_id}/replay",
    tags=notifications_tag,
    response_model=DeliveryOut,
)
async def replay_delivery(
    delivery_id: uuid.UUID, session: Session, caller: SignedIn
) -> DeliveryOut:
    require_scope(caller, NOTIFICATIONS_ADMIN)
    row = await delivery.replay(session, delivery_id)
    await tasks.enqueue_deliveries(session, [row.id])
    return DeliveryOut.model_validate(row)


@router.get(
    "/notifications/{notification_id}", tags=notifications_tag, response_model=NotificationOut
)
async def get_notification(
    notification_id: uuid.UUID, session: Session, caller: SignedIn
) -> NotificationOut:
    found = await notifications.get_notification(session, notification_id, caller)
    return NotificationOut.model_validate(found)


@router.post(
    "/notifications/{notification_id}/read",
    tags=notifications_tag,
    response_model=NotificationOut,
)
async def mark_read(
    notification_id: uuid.UUID, session: Session, caller: SignedIn
) -> NotificationOut:
    return NotificationOut.model_validate(
        await notifications.mark_read(session, notification_id, caller)
    )


# --- conversations ------------------------------------------------------------------------


@router.get("/conversations", tags=conversations_tag, response_model=CursorPage[ConversationOut])
async def list_conversations(
    session: Session,
    caller: SignedIn,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CursorPage[ConversationOut]:
    page = await conversations.list_conversations(session, caller, first=limit, after=cursor)
    return CursorPage.of(page, ConversationOut)


@router.post(
    "/conversations", tags=conversations_tag, status_code=201, response_model=ConversationOut
)
async def start_conversation(
    body: ConversationIn, session: Session, caller: SignedIn
) -> ConversationOut:
    row = await conversations.start_conversation(
        session, caller, member_ids=body.member_ids, title=body.title
    )
    return ConversationOut.model_validate(row)


@router.get(
    "/conversations/{conversation_id}", tags=conversations_tag, response_model=ConversationOut
)
async def get_conversation(
    conversation_id: uuid.UUID, session: Session, caller: SignedIn
) -> ConversationOut:
    row = await conversations.get_conversation(session, caller, conversation_id)
    return ConversationOut.model_validate(row)


@router.get(
    "/conversations/{conversation_id}/members",
    tags=conversations_tag,
    response_model=list[MemberOut],
)
async def list_members(
    conversation_id: uuid.UUID, session: Session, caller: SignedIn
) -> list[MemberOut]:
    rows = await conversations.list_members(session, caller, conversation_id)
    return [MemberOut.model_validate(r) for r in rows]


@router.post(
    "/conversations/{conversation_id}/members",
    tags=conversations_tag,
    response_model=list[MemberOut],
)
async def add_members(
    conversation_id: uuid.UUID, body: MembersIn, session: Session, caller: SignedIn
) -> list[MemberOut]:
    """A group's admins add members; answers every member."""
    rows = await conversations.add_members(session, caller, conversation_id, body.member_ids)
    return [MemberOut.model_validate(r) for r in rows]


@router.delete(
    "/conversations/{conversation_id}/members/{user_id}",
    tags=conversations_tag,
    status_code=204,
)
async def remove_member(
    conversation_id: uuid.UUID, user_id: uuid.UUID, session: Session, caller: SignedIn
) -> Response:
    """Leave (your own id), or, as an admin, remove a member."""
    await conversations.remove_member(session, caller, conversation_id, user_id)
    return Response(status_code=204)


@router.get(
    "/conversations/{conversation_id}/messages",
    tags=conversations_tag,
    response_model=CursorPage[MessageOut],
)
async def list_messages(
    conversation_id: uuid.UUID,
    session: Session,
    caller: SignedIn,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CursorPage[MessageOut]:
    page = await conversations.list_messages(
        session, caller, conversation_id=conversation_id, first=limit, after=cursor
    )
    return CursorPage.of(page, MessageOut)


@router.post(
    "/conversations/{conversation_id}/messages",
    tags=conversations_tag,
    status_code=201,
    response_model=MessageOut,
)
async def send_message(
    conversation_id: uuid.UUID, body: MessageIn, session: Session, caller: SignedIn, redis: Redis
) -> MessageOut:
    message, members = await conversations.send_message(
        session,
        caller,
        conversation_id=conversation_id,
        body=body.body,
        attachment_ids=body.attachment_ids,
    )
    event = conversations.as_event(message)
    for member in members:
        await redis.publish(conversations.messages_channel(member), event)
    return MessageOut.model_validate(message)


@router.post(
    "/conversations/{conversation_id}/read",
    tags=conversations_tag,
    response_model=ConversationOut,
)
async def mark_conversation_read(
    conversation_id: uuid.UUID, session: Session, caller: SignedIn
) -> ConversationOut:
    row = await conversations.mark_read(session, caller, conversation_id)
    return ConversationOut.model_validate(row)
