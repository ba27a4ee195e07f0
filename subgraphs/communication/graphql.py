"""Communication's part of the graph: notifications, `User.notifications`, live delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum

import strawberry

from subgraphs.common.graphql import HubInfo, federated_schema, parse_id
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection, PageKey
from subgraphs.communication import models, service, tasks


@strawberry.enum
class DeliveryStatus(Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)

    @strawberry.field(description="Notifications sent to this user, newest first.")
    async def notifications(
        self, info: HubInfo, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Notification]:
        key = PageKey(parent_id=parse_id(self.id), first=first, after=after)
        page = await info.context.loader(service.notifications_of_recipients).load(key)
        return Connection.of(page, Notification.from_model)


@strawberry.type(description="A message to one user, delivered in the app.")
class Notification:
    id: strawberry.ID
    recipient: User
    title: str
    body: str
    status: DeliveryStatus
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, notification: models.Notification) -> Notification:
        return cls(
            id=strawberry.ID(str(notification.id)),
            recipient=User(id=strawberry.ID(str(notification.recipient_id))),
            title=notification.title,
            body=notification.body,
            status=DeliveryStatus(notification.status.value),
            delivered_at=notification.delivered_at,
            read_at=notification.read_at,
            created_at=notification.created_at,
        )


@strawberry.input
class SendNotificationInput:
    recipient_id: strawberry.ID
    title: str
    body: str = ""


@strawberry.type
class Query:
    @strawberry.field(description="A user's notifications, newest first.")
    async def notifications(
        self,
        info: HubInfo,
        recipient_id: strawberry.ID,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[Notification]:
        recipient = parse_id(recipient_id, "recipientId")
        async with info.context.session() as session:
            page = await service.list_notifications(
                session, recipient_id=recipient, first=first, after=after
            )
        return Connection.of(page, Notification.from_model)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store a notification and queue its in-app delivery.")
    async def send_notification(self, info: HubInfo, input: SendNotificationInput) -> Notification:
        recipient = parse_id(input.recipient_id, "recipientId")
        async with info.context.session() as session:
            notification = await service.create_notification(
                session, recipient_id=recipient, title=input.title, body=input.body
            )
        # Celery's client is synchronous: keep it off the event loop.
        await asyncio.to_thread(tasks.deliver_in_app.delay, str(notification.id))
        return Notification.from_model(notification)

    @strawberry.mutation
    async def mark_notification_read(self, info: HubInfo, id: strawberry.ID) -> Notification:
        async with info.context.session() as session:
            notification = await service.mark_read(session, parse_id(id))
        return Notification.from_model(notification)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Notifications delivered to a user from now on.")
    async def notification_added(
        self, info: HubInfo, recipient_id: strawberry.ID
    ) -> AsyncGenerator[Notification, None]:
        channel = service.inbox_channel(parse_id(recipient_id, "recipientId"))
        async for event in info.context.redis.subscribe(channel):
            yield Notification.from_model(service.from_event(event))


schema = federated_schema(
    query=Query, mutation=Mutation, subscription=Subscription, types=[User, Notification]
)
