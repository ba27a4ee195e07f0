"""Communication's domain rules. GraphQL resolvers, REST routes and tasks call these."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, NotFound
from subgraphs.common.pagination import Page, PageKey, keyset_page, pages_per_parent
from subgraphs.common.redis import Namespace
from subgraphs.communication.models import DeliveryStatus, Notification

MAX_TITLE = 300
MAX_BODY = 10_000


def inbox_channel(recipient_id: uuid.UUID | str) -> str:
    """Redis channel on which a user's in-app notifications are announced."""
    return f"notifications:{recipient_id}"


async def create_notification(
    session: AsyncSession, *, recipient_id: uuid.UUID, title: str, body: str = ""
) -> Notification:
    """Store a notification as queued; the caller hands it to a worker for delivery."""
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    if len(body) > MAX_BODY:
        raise BadInput(f"body must be at most {MAX_BODY} characters", field="body")
    notification = Notification(recipient_id=recipient_id, title=title, body=body)
    session.add(notification)
    await session.commit()
    return notification


async def deliver_in_app(
    session: AsyncSession, redis: Namespace, notification_id: uuid.UUID
) -> Notification | None:
    """Mark delivered and announce it to subscribers. Runs in a worker; safe to repeat.

    The status flips from queued to delivered in one conditional UPDATE, so a task run
    again (its worker died before acknowledging it) announces nothing a second time.
    """
    delivered = await session.scalar(
        update(Notification)
        .where(Notification.id == notification_id, Notification.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.DELIVERED, delivered_at=utcnow())
        .returning(Notification)
    )
    await session.commit()
    if delivered is not None:
        await redis.publish(inbox_channel(delivered.recipient_id), as_event(delivered))
    return delivered


class NotificationEvent(BaseModel):
    """A notification as announced on Redis: JSON there, a `Notification` again here."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    recipient_id: uuid.UUID
    title: str
    body: str
    status: DeliveryStatus
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime
    updated_at: datetime


def as_event(notification: Notification) -> dict[str, Any]:
    return NotificationEvent.model_validate(notification).model_dump(mode="json")


def from_event(event: dict[str, Any]) -> Notification:
    return Notification(**NotificationEvent.model_validate(event).model_dump())


async def get_notification(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    notification = await session.get(Notification, notification_id)
    if notification is None:
        raise NotFound("notification not found")
    return notification


async def mark_read(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    notification = await get_notification(session, notification_id)
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.commit()
    return notification


async def list_notifications(
    session: AsyncSession, *, recipient_id: uuid.UUID, first: int, after: str | None
) -> Page[Notification]:
    stmt = select(Notification).where(Notification.recipient_id == recipient_id)
    return await keyset_page(session, stmt, Notification, first=first, after=after)


async def notifications_of_recipients(
    session: AsyncSession, keys: Sequence[PageKey]
) -> list[Page[Notification]]:
    return await pages_per_parent(
        session, select(Notification), Notification, Notification.recipient_id, keys
    )
