"""Communication's part of the graph: notifications, preferences, conversations, live events.

Protected fields carry `@authenticated` / `@requiresScopes` so the router refuses them
early; the service functions check again, so a subgraph reached directly is as strict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.scalars import JSON

from subgraphs.common.auth import require_scope, require_user
from subgraphs.common.errors import BadInput
from subgraphs.common.graphql import HubInfo, federated_schema, id_of, optional_id_of, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Page, PageInfo, PageKey
from subgraphs.communication import models, tasks
from subgraphs.communication.service import conversations, delivery, notifications, preferences
from subgraphs.communication.service.notifications import (
    NOTIFICATIONS_ADMIN,
    NOTIFICATIONS_SEND,
    check_reader,
)
from subgraphs.communication.settings import CommunicationSettings

federated = strawberry.federation


def settings_of(info: HubInfo) -> CommunicationSettings:
    settings = info.context.settings
    assert isinstance(settings, CommunicationSettings)
    return settings


@strawberry.enum
class DeliveryStatus(Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.enum(description="How a notification reaches its recipient.")
class Channel(Enum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


@strawberry.enum(description="Where one channel's delivery stands.")
class DeliveryState(Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    SKIPPED = "skipped"
    DIGESTED = "digested"
    DIGEST_PENDING = "digest_pending"


@federated.type(keys=[Key(fields="id", resolvable=False)], description="A content document.")
class Document:
    id: strawberry.ID


@federated.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)

    @strawberry.field(
        description="Notifications sent to this user, newest first: only for the user "
        "themselves (or notifications:admin), null with an error for anyone else."
    )
    async def notifications(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> NotificationConnection | None:
        recipient = parse_id(self.id)
        check_reader(info.context.principal, recipient)
        key = PageKey(parent_id=recipient, first=first, after=after)
        page = await info.context.loader(notifications.notifications_of_recipients).load(key)
        return NotificationConnection.of(page, recipient)


@strawberry.type(description="A delivery attempt: sent, or failed and why.")
class DeliveryAttempt:
    number: int
    status: str
    reason: str | None
    created_at: datetime


@strawberry.type(description="A notification's delivery over one channel.")
class Delivery:
    id: strawberry.ID
    notification_id: strawberry.ID
    recipient: User
    channel: Channel
    status: DeliveryState
    destination: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    dead_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.Delivery) -> Delivery:
        return cls(
            id=id_of(row.id),
            notification_id=id_of(row.notification_id),
            recipient=User(id=id_of(row.recipient_id)),
            channel=Channel(row.channel),
            status=DeliveryState(row.status),
            destination=row.destination,
            attempts=row.attempts,
            last_error=row.last_error,
            sent_at=row.sent_at,
            dead_at=row.dead_at,
            created_at=row.created_at,
        )

    @strawberry.field(description="Every attempt, oldest first.")
    async def attempt_history(self, info: HubInfo) -> list[DeliveryAttempt]:
        rows = await info.context.loader(delivery.attempts_of_deliveries).load(parse_id(self.id))
        return [
            DeliveryAttempt(
                number=a.number, status=a.status, reason=a.reason, created_at=a.created_at
            )
            for a in rows
        ]


@strawberry.type(description="A message to one user, delivered in the app and by their channels.")
class Notification:
    id: strawberry.ID
    recipient: User
    category: str
    title: str
    body: str
    status: DeliveryStatus
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime
    subject_type: str | None = strawberry.field(description="What it is about, e.g. Document.")
    subject_id: strawberry.ID | None

    @classmethod
    def from_model(
        cls, notification: models.Notification | notifications.NotificationEvent
    ) -> Notification:
        return cls(
            id=id_of(notification.id),
            recipient=User(id=id_of(notification.recipient_id)),
            category=notification.category,
            title=notification.title,
            body=notification.body,
            status=DeliveryStatus(notification.status.value),
            delivered_at=notification.delivered_at,
            read_at=notification.read_at,
            created_at=notification.created_at,
            subject_type=notification.subject_type,
            subject_id=optional_id_of(notification.subject_id),
        )

    @strawberry.field
    def read(self) -> bool:
        return self.read_at is not None

    @strawberry.field(description="The document it is about, when it is about one.")
    def document(self) -> Document | None:
        if self.subject_type == "Document" and self.subject_id:
            return Document(id=self.subject_id)
        return None

    @strawberry.field(description="One per channel, with its attempts.")
    async def deliveries(self, info: HubInfo) -> list[Delivery]:
        rows = await info.context.loader(notifications.deliveries_of_notifications).load(
            parse_id(self.id)
        )
        return [Delivery.from_model(row) for row in rows]


@strawberry.type
class NotificationConnection:
    nodes: list[Notification]
    page_info: PageInfo
    recipient_id: strawberry.Private[uuid.UUID]

    @classmethod
    def of(cls, page: Page[models.Notification], recipient_id: uuid.UUID) -> NotificationConnection:
        return cls(
            nodes=[Notification.from_model(n) for n in page.items],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            recipient_id=recipient_id,
        )

    @strawberry.field(description="Unread notifications of the recipient, over every page.")
    async def unread_count(self, info: HubInfo) -> int:
        return await info.context.loader(notifications.unread_counts).load(self.recipient_id)


@strawberry.type
class DeliveryConnection:
    nodes: list[Delivery]
    page_info: PageInfo


@strawberry.type(description="A user's choice for one category on one channel.")
class NotificationPreference:
    category: str
    channel: Channel
    enabled: bool
    digest_seconds: int | None = strawberry.field(
        description="Email only: one email per this many seconds for the category."
    )

    @classmethod
    def from_model(cls, row: models.Preference) -> NotificationPreference:
        return cls(
            category=row.category,
            channel=Channel(row.channel),
            enabled=row.enabled,
            digest_seconds=row.digest_seconds,
        )


@strawberry.type(description="Where the caller's webhook notifications go.")
class Webhook:
    url: str | None
    secret: str | None = strawberry.field(
        description="The signing secret, shown once when the webhook is set."
    )


@strawberry.type(description="A conversation between users: direct (two) or a group.")
class Conversation:
    id: strawberry.ID
    kind: str
    title: str | None
    created_at: datetime
    last_message_at: datetime | None

    @classmethod
    def from_model(cls, row: models.Conversation) -> Conversation:
        return cls(
            id=id_of(row.id),
            kind=row.kind,
            title=row.title,
            created_at=row.created_at,
            last_message_at=row.last_message_at,
        )

    @strawberry.field
    async def members(self, info: HubInfo) -> list[User]:
        rows = await info.context.loader(conversations.members_of_conversations).load(
            parse_id(self.id)
        )
        return [User(id=id_of(m.user_id)) for m in rows]

    @strawberry.field(description="Members who add and remove members (groups only).")
    async def admins(self, info: HubInfo) -> list[User]:
        rows = await info.context.loader(conversations.members_of_conversations).load(
            parse_id(self.id)
        )
        return [User(id=id_of(m.user_id)) for m in rows if m.role == "admin"]

    @strawberry.field(description="Messages from others the caller has not read.")
    async def unread_count(self, info: HubInfo) -> int:
        caller = info.context.user
        return await info.context.loader(conversations.unread_message_counts).load(
            (parse_id(self.id), caller.user_id)
        )

    @strawberry.field(description="Newest first.")
    async def messages(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> MessageConnection:
        # A Conversation is only ever built for one of its members (see Query.conversation).
        key = PageKey(parent_id=parse_id(self.id), first=first, after=after)
        page = await info.context.loader(conversations.messages_of_conversations).load(key)
        return MessageConnection(
            nodes=[Message.from_model(m) for m in page.items], page_info=_page_info(page)
        )


@strawberry.type(description="A message in a conversation.")
class Message:
    id: strawberry.ID
    conversation_id: strawberry.ID
    sender: User
    body: str
    created_at: datetime
    attachment_ids: strawberry.Private[list[str]]

    @classmethod
    def from_model(cls, row: models.Message) -> Message:
        return cls(
            id=id_of(row.id),
            conversation_id=id_of(row.conversation_id),
            sender=User(id=id_of(row.sender_id)),
            body=row.body,
            created_at=row.created_at,
            attachment_ids=list(row.attachment_ids or []),
        )

    @strawberry.field(
        description="Attached documents, resolved by content: null where the caller may "
        "not read one."
    )
    def attachments(self) -> list[Document | None]:
        return [Document(id=strawberry.ID(a)) for a in self.attachment_ids]

    @strawberry.field(description="Members other than the sender who have read it.")
    async def read_by(self, info: HubInfo) -> list[User]:
        members = await info.context.loader(conversations.members_of_conversations).load(
            parse_id(self.conversation_id)
        )
        return [
            User(id=id_of(m.user_id))
            for m in members
            if str(m.user_id) != self.sender.id
            and m.last_read_at is not None
            and m.last_read_at >= self.created_at
        ]


@strawberry.type
class MessageConnection:
    nodes: list[Message]
    page_info: PageInfo


@strawberry.type
class ConversationConnection:
    nodes: list[Conversation]
    page_info: PageInfo


@strawberry.input
class NotificationLinkInput:
    type: str = strawberry.field(description="The linked entity's type, e.g. Document.")
    id: strawberry.ID


@strawberry.input(
    description="A notification from a template (`template` and `variables`), or free text "
    "(`title` and `body`, the `generic` template). Sending to anyone but yourself needs "
    "notifications:send."
)
class SendNotificationInput:
    recipient_id: strawberry.ID
    title: str | None = None
    body: str = ""
    template: str | None = None
    variables: JSON | None = None
    category: str = "general"
    channels: list[Channel] | None = None
    link: NotificationLinkInput | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key never sends twice; a new one is made when omitted.",
    )


@strawberry.input
class NotificationPreferenceInput:
    category: str
    channel: Channel
    enabled: bool = True
    digest_seconds: int | None = None


@strawberry.input
class StartConversationInput:
    member_ids: list[strawberry.ID]
    title: str | None = None


@strawberry.input
class SendMessageInput:
    conversation_id: strawberry.ID
    body: str = ""
    attachment_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


def _page_info(page: Page[object]) -> PageInfo:
    return PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)


@strawberry.type
class Query:
    @federated.field(
        authenticated=True,
        description="The caller's notifications (another user's with notifications:admin), "
        "newest first.",
    )
    async def notifications(
        self,
        info: HubInfo,
        recipient_id: strawberry.ID | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        unread_only: bool = False,
    ) -> NotificationConnection:
        caller = info.context.user
        recipient = parse_id(recipient_id, "recipientId") if recipient_id else caller.user_id
        async with info.context.reader() as session:
            page = await notifications.list_notifications(
                session,
                caller,
                recipient_id=recipient,
                first=first,
                after=after,
                unread_only=unread_only,
            )
        return NotificationConnection.of(page, recipient)

    @federated.field(authenticated=True, description="One of the caller's notifications.")
    async def notification(self, info: HubInfo, id: strawberry.ID) -> Notification:
        async with info.context.reader() as session:
            found = await notifications.get_notification(
                session, parse_id(id), info.context.principal
            )
        return Notification.from_model(found)

    @federated.field(authenticated=True, description="The caller's notification preferences.")
    async def notification_preferences(self, info: HubInfo) -> list[NotificationPreference]:
        async with info.context.reader() as session:
            rows = await preferences.list_preferences(session, info.context.principal)
        return [NotificationPreference.from_model(r) for r in rows]

    @federated.field(
        requires_scopes=[[NOTIFICATIONS_ADMIN]],
        description="Deliveries out of attempts (the dead-letter list), newest first.",
    )
    async def dead_letters(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> DeliveryConnection:
        require_scope(info.context.principal, NOTIFICATIONS_ADMIN)
        async with info.context.reader() as session:
            page = await delivery.dead_letters(session, first=first, after=after)
        return DeliveryConnection(
            nodes=[Delivery.from_model(d) for d in page.items], page_info=_page_info(page)
        )

    @federated.field(authenticated=True, description="The caller's conversations, newest first.")
    async def conversations(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> ConversationConnection:
        async with info.context.reader() as session:
            page = await conversations.list_conversations(
                session, info.context.principal, first=first, after=after
            )
        return ConversationConnection(
            nodes=[Conversation.from_model(c) for c in page.items], page_info=_page_info(page)
        )

    @federated.field(authenticated=True, description="A conversation the caller is in.")
    async def conversation(self, info: HubInfo, id: strawberry.ID) -> Conversation:
        async with info.context.reader() as session:
            found = await conversations.get_conversation(
                session, info.context.principal, parse_id(id)
            )
        return Conversation.from_model(found)


async def send_notification(info: HubInfo, input: SendNotificationInput) -> Notification:
    """Shared by the mutation: authorise, render and store, then queue the deliveries."""
    caller = info.context.user
    recipient = parse_id(input.recipient_id, "recipientId")
    if recipient != caller.user_id:
        require_scope(caller, NOTIFICATIONS_SEND)
    variables: dict[str, Any]
    if input.template is None:
        template, variables = "generic", {"title": (input.title or "").strip(), "body": input.body}
    else:
        if not isinstance(input.variables or {}, dict):
            raise BadInput("variables must be a JSON object", field="variables")
        template, variables = input.template, dict(input.variables or {})
    link_id = parse_id(input.link.id, "link.id") if input.link else None
    async with info.context.session() as session:
        sent = await notifications.send(
            session,
            settings_of(info),
            recipient_id=recipient,
            template_key=template,
            variables=variables,
            idempotency_key=input.idempotency_key or str(uuid.uuid4()),
            category=input.category.strip(),
            channels=[c.value for c in input.channels] if input.channels is not None else None,
            subject_type=input.link.type if input.link else None,
            subject_id=link_id,
            sender_id=caller.user_id,
        )
        await tasks.enqueue(session, sent, info.context.redis)
    return Notification.from_model(sent.notification)


@strawberry.type
class Mutation:
    @federated.mutation(
        authenticated=True,
        description="Render, store and queue a notification for delivery on each channel.",
    )
    async def send_notification(self, info: HubInfo, input: SendNotificationInput) -> Notification:
        return await send_notification(info, input)

    @federated.mutation(authenticated=True)
    async def mark_notification_read(self, info: HubInfo, id: strawberry.ID) -> Notification:
        async with info.context.session() as session:
            found = await notifications.mark_read(session, parse_id(id), info.context.principal)
        return Notification.from_model(found)

    @federated.mutation(authenticated=True, description="How many were marked read.")
    async def mark_all_notifications_read(self, info: HubInfo) -> int:
        async with info.context.session() as session:
            return await notifications.mark_all_read(session, info.context.principal)

    @federated.mutation(authenticated=True)
    async def set_notification_preference(
        self, info: HubInfo, input: NotificationPreferenceInput
    ) -> NotificationPreference:
        async with info.context.session() as session:
            row = await preferences.set_preference(
                session,
                info.context.principal,
                category=input.category,
                channel=input.channel.value,
                enabled=input.enabled,
                digest_seconds=input.digest_seconds,
            )
        return NotificationPreference.from_model(row)

    @federated.mutation(
        authenticated=True,
        description="Send the caller's notifications to this URL too (null stops it); "
        "answers the signing secret once.",
    )
    async def set_webhook(self, info: HubInfo, url: str | None = None) -> Webhook:
        async with info.context.session() as session:
            contact, secret = await preferences.set_webhook(
                session, settings_of(info), info.context.principal, url
            )
        return Webhook(url=contact.webhook_url, secret=secret)

    @federated.mutation(
        requires_scopes=[[NOTIFICATIONS_ADMIN]],
        description="Queue a dead delivery again, with a fresh set of attempts.",
    )
    async def replay_delivery(self, info: HubInfo, id: strawberry.ID) -> Delivery:
        require_scope(info.context.principal, NOTIFICATIONS_ADMIN)
        async with info.context.session() as session:
            row = await delivery.replay(session, parse_id(id))
            await tasks.enqueue_deliveries(session, [row.id])
        return Delivery.from_model(row)

    @federated.mutation(
        authenticated=True,
        description="A direct conversation with one user (the existing one, if any), or a group.",
    )
    async def start_conversation(
        self, info: HubInfo, input: StartConversationInput
    ) -> Conversation:
        members = [parse_id(m, "memberIds") for m in input.member_ids]
        async with info.context.session() as session:
            row = await conversations.start_conversation(
                session, info.context.principal, member_ids=members, title=input.title
            )
        return Conversation.from_model(row)

    @federated.mutation(authenticated=True)
    async def send_message(self, info: HubInfo, input: SendMessageInput) -> Message:
        async with info.context.session() as session:
            message, members = await conversations.send_message(
                session,
                info.context.principal,
                conversation_id=parse_id(input.conversation_id, "conversationId"),
                body=input.body,
                attachment_ids=[parse_id(a, "attachmentIds") for a in input.attachment_ids],
            )
        event = conversations.as_event(message)
        for member in members:
            await info.context.redis.publish(conversations.messages_channel(member), event)
        return Message.from_model(message)

    @federated.mutation(
        authenticated=True,
        description="Add members to a group conversation (its admins only).",
    )
    async def add_conversation_members(
        self, info: HubInfo, id: strawberry.ID, member_ids: list[strawberry.ID]
    ) -> Conversation:
        conversation_id = parse_id(id)
        members = [parse_id(m, "memberIds") for m in member_ids]
        async with info.context.session() as session:
            await conversations.add_members(
                session, info.context.principal, conversation_id, members
            )
            row = await conversations.get_conversation(
                session, info.context.principal, conversation_id
            )
        return Conversation.from_model(row)

    @federated.mutation(
        authenticated=True,
        description="Remove a member from a group conversation (its admins only); they no "
        "longer see it nor receive its messages.",
    )
    async def remove_conversation_member(
        self, info: HubInfo, id: strawberry.ID, member_id: strawberry.ID
    ) -> bool:
        async with info.context.session() as session:
            await conversations.remove_member(
                session, info.context.principal, parse_id(id), parse_id(member_id, "memberId")
            )
        return True

    @federated.mutation(authenticated=True, description="Leave a group conversation.")
    async def leave_conversation(self, info: HubInfo, id: strawberry.ID) -> bool:
        caller = info.context.user
        async with info.context.session() as session:
            await conversations.remove_member(session, caller, parse_id(id), caller.user_id)
        return True

    @federated.mutation(authenticated=True, description="The caller has read it all so far.")
    async def mark_conversation_read(self, info: HubInfo, id: strawberry.ID) -> Conversation:
        async with info.context.session() as session:
            row = await conversations.mark_read(session, info.context.principal, parse_id(id))
        return Conversation.from_model(row)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The caller's notifications, as they are delivered in the app. "
        "`recipientId`, when given, must be the caller (or needs notifications:admin)."
    )
    async def notification_added(
        self, info: HubInfo, recipient_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Notification, None]:
        caller = require_user(info.context.principal)
        recipient = parse_id(recipient_id, "recipientId") if recipient_id else caller.user_id
        check_reader(caller, recipient)
        # Decoded once per event for all of this process's subscriptions to the recipient's
        # inbox (one user, many tabs and devices), then resolved for each.
        channel = notifications.inbox_channel(recipient)
        async for notification in info.context.redis.shared(channel, _notification_of):
            info.context.clear_loaders()
            yield notification

    @strawberry.subscription(
        description="Messages in the caller's conversations (or one of them) from now on."
    )
    async def message_added(
        self, info: HubInfo, conversation_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Message, None]:
        caller = require_user(info.context.principal)
        only = parse_id(conversation_id, "conversationId") if conversation_id else None
        if only is not None:
            async with info.context.session() as session:
                await conversations.get_conversation(session, caller, only)
        channel = conversations.messages_channel(caller.user_id)
        async for in_conversation, message in info.context.redis.shared(channel, _message_of):
            if only is None or in_conversation == only:
                info.context.clear_loaders()
                yield message


# What the subscriptions make of an announcement on Redis: computed once per event and
# shared by every subscription that receives it (read-only; see Namespace.shared).


def _notification_of(data: str) -> Notification:
    return Notification.from_model(notifications.from_event(data))


def _message_of(data: str) -> tuple[uuid.UUID, Message]:
    message = conversations.from_event(json.loads(data))
    return message.conversation_id, Message.from_model(message)


schema = federated_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[User, Notification, Document],
)
