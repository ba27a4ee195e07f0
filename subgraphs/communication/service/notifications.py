"""Making notifications (rendered, with a delivery per channel) and reading them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, Forbidden, NotFound
from subgraphs.common.pagination import Page, PageKey, keyset_page, pages_per_parent
from subgraphs.communication.models import (
    Channel,
    Contact,
    Delivery,
    DeliveryState,
    DeliveryStatus,
    Notification,
    Preference,
)
from subgraphs.communication.settings import CommunicationSettings
from subgraphs.communication.templates import Template, template, templates_from

MAX_TITLE = 300
MAX_BODY = 10_000
MAX_KEY = 200
MAX_CATEGORY = 64
NOTIFICATIONS_SEND = "notifications:send"
NOTIFICATIONS_ADMIN = "notifications:admin"


def inbox_channel(recipient_id: uuid.UUID | str) -> str:
    """Redis channel on which a user's in-app notifications are announced."""
    return f"notifications:{recipient_id}"


def check_reader(principal: Principal | None, recipient_id: uuid.UUID) -> Principal:
    """A user reads their own notifications; notifications:admin reads anyone's."""
    caller = require_user(principal)
    if caller.user_id != recipient_id and not caller.has_scope(NOTIFICATIONS_ADMIN):
        raise Forbidden("these notifications are someone else's")
    return caller


@dataclass
class Sent:
    """What `send` made: the notification, and the work to hand to the workers."""

    notification: Notification
    created: bool
    queued: list[uuid.UUID] = field(default_factory=list)  # deliveries to run
    digests: list[tuple[uuid.UUID, str, int]] = field(default_factory=list)  # (user, category, s)


async def send(
    session: AsyncSession,
    settings: CommunicationSettings,
    *,
    recipient_id: uuid.UUID,
    template_key: str,
    variables: dict[str, Any],
    idempotency_key: str,
    category: str = "general",
    channels: Sequence[str] | None = None,
    transactional: bool = False,
    subject_type: str | None = None,
    subject_id: uuid.UUID | None = None,
    sender_id: uuid.UUID | None = None,
    strict_variables: bool = True,
) -> Sent:
    """Store a notification and its deliveries; the same idempotency key returns the first.

    Templates are rendered here, for every channel, so a missing variable or a broken
    template refuses the send before anything is stored.
    """
    if not idempotency_key or len(idempotency_key) > MAX_KEY:
        raise BadInput(f"idempotencyKey must be 1 to {MAX_KEY} characters", field="idempotencyKey")
    if not category or len(category) > MAX_CATEGORY:
        raise BadInput(f"category must be 1 to {MAX_CATEGORY} characters", field="category")
    existing = await session.scalar(
        select(Notification).where(Notification.idempotency_key == idempotency_key)
    )
    if existing is not None:
        return Sent(existing, created=False)

    chosen = template(templates_from(settings.templates_file), template_key)
    chosen.check_variables(variables, strict=strict_variables)
    known = {name: variables[name] for name in chosen.variables}
    wanted = [c for c in chosen.channels if channels is None or c in channels]
    if "in_app" in chosen.channels and (channels is None or Channel.WEBHOOK in channels):
        wanted.append(Channel.WEBHOOK)  # webhooks carry the in-app rendering as JSON
    contact = await session.get(Contact, recipient_id)
    locale = (contact.locale if contact else None) or settings.default_locale
    context = {**known, "app_url": settings.app_url}
    rendered = {
        channel: chosen.render(channel, locale, context, default_locale=settings.default_locale)
        for channel in chosen.channels
    }
    # Without the secrets: what the notification shows and what deliveries keep once sent.
    redacted = (
        {
            channel: chosen.render(
                channel, locale, chosen.redacted(context), default_locale=settings.default_locale
            )
            for channel in chosen.channels
        }
        if chosen.secrets
        else rendered
    )
    title, body = _headline(chosen, redacted)
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    if len(body) > MAX_BODY:
        raise BadInput(f"body must be at most {MAX_BODY} characters", field="body")

    notification = Notification(
        id=uuid.uuid4(),
        recipient_id=recipient_id,
        category=category,
        title=title,
        body=body,
        idempotency_key=idempotency_key,
        subject_type=subject_type,
        subject_id=subject_id,
        sender_id=sender_id,
    )
    session.add(notification)
    preferences = {
        p.channel: p
        for p in await session.scalars(
            select(Preference).where(
                Preference.user_id == recipient_id, Preference.category == category
            )
        )
    }
    sent = Sent(notification, created=True)
    for channel in dict.fromkeys(wanted):
        preference = preferences.get(channel)
        if preference is not None and not preference.enabled and not transactional:
            continue
        delivery = _delivery(notification, channel, rendered, redacted, contact)
        if delivery is None:
            continue
        if (
            channel == Channel.EMAIL
            and preference is not None
            and preference.digest_seconds
            and not transactional
            and delivery.status == DeliveryState.QUEUED
        ):
            delivery.status = DeliveryState.DIGEST_PENDING
            sent.digests.append((recipient_id, category, preference.digest_seconds))
        session.add(delivery)
        if delivery.status == DeliveryState.QUEUED:
            sent.queued.append(delivery.id)
    try:
        await session.commit()
    except IntegrityError:  # the same key, sent concurrently: the first one wins
        await session.rollback()
        first = await session.scalar(
            select(Notification).where(Notification.idempotency_key == idempotency_key)
        )
        if first is None:
            raise
        return Sent(first, created=False)
    return sent


def _headline(chosen: Template, rendered: dict[str, dict[str, str]]) -> tuple[str, str]:
    """The notification's own title and body: the in-app text, else only the email subject.

    (An email body is the delivery's own.)
    """
    if "in_app" in rendered:
        return rendered["in_app"]["title"], rendered["in_app"]["body"]
    return rendered["email"]["subject"], ""


def _delivery(
    notification: Notification,
    channel: str,
    rendered: dict[str, dict[str, str]],
    redacted: dict[str, dict[str, str]],
    contact: Contact | None,
) -> Delivery | None:
    delivery = Delivery(
        id=uuid.uuid4(),
        key=f"{notification.id}:{channel}",
        notification_id=notification.id,
        recipient_id=notification.recipient_id,
        category=notification.category,
        channel=channel,
        status=DeliveryState.QUEUED,
        attempts=0,
    )
    if channel == Channel.IN_APP:
        delivery.subject, delivery.body = rendered["in_app"]["title"], rendered["in_app"]["body"]
    elif channel == Channel.EMAIL:
        delivery.subject, delivery.body = rendered["email"]["subject"], rendered["email"]["body"]
        delivery.destination = contact.email if contact else None
        if not delivery.destination:
            delivery.status = DeliveryState.SKIPPED
            delivery.last_error = "no email address is known for the recipient"
    elif channel == Channel.WEBHOOK:
        if contact is None or not contact.webhook_url:
            return None  # webhooks are opt-in: nothing to record without an endpoint
        delivery.subject, delivery.body = rendered["in_app"]["title"], rendered["in_app"]["body"]
        delivery.destination = contact.webhook_url
    part = "email" if channel == Channel.EMAIL else "in_app"
    if redacted[part]["body"] != delivery.body:
        if delivery.status == DeliveryState.SKIPPED:
            delivery.body = redacted[part]["body"]  # never sent: nothing to keep a secret for
        else:
            delivery.redacted_body = redacted[part]["body"]
    return delivery


async def get_notification(
    session: AsyncSession, notification_id: uuid.UUID, principal: Principal | None
) -> Notification:
    require_user(principal)
    notification = await session.get(Notification, notification_id)
    if notification is None:
        raise NotFound("notification not found")
    try:
        check_reader(principal, notification.recipient_id)
    except Forbidden:
        raise NotFound("notification not found") from None  # others' ids stay unknown
    return notification


async def mark_read(
    session: AsyncSession, notification_id: uuid.UUID, principal: Principal | None
) -> Notification:
    notification = await get_notification(session, notification_id, principal)
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.commit()
    return notification


async def mark_all_read(session: AsyncSession, principal: Principal | None) -> int:
    caller = require_user(principal)
    result = await session.execute(
        update(Notification)
        .where(Notification.recipient_id == caller.user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_notifications(
    session: AsyncSession,
    principal: Principal | None,
    *,
    recipient_id: uuid.UUID | None,
    first: int,
    after: str | None,
    unread_only: bool = False,
) -> Page[Notification]:
    caller = require_user(principal)
    recipient = recipient_id or caller.user_id
    check_reader(caller, recipient)
    stmt = select(Notification).where(Notification.recipient_id == recipient)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return await keyset_page(session, stmt, Notification, first=first, after=after)


async def unread_count(
    session: AsyncSession, principal: Principal | None, recipient_id: uuid.UUID | None = None
) -> int:
    caller = require_user(principal)
    recipient = recipient_id or caller.user_id
    check_reader(caller, recipient)
    return (await unread_counts(session, [recipient]))[0]


async def notifications_of_recipients(
    session: AsyncSession, keys: Sequence[PageKey]
) -> list[Page[Notification]]:
    return await pages_per_parent(
        session, select(Notification), Notification, Notification.recipient_id, keys
    )


async def unread_counts(session: AsyncSession, recipient_ids: Sequence[uuid.UUID]) -> list[int]:
    rows = await session.execute(
        select(Notification.recipient_id, func.count())
        .where(Notification.recipient_id.in_(recipient_ids), Notification.read_at.is_(None))
        .group_by(Notification.recipient_id)
    )
    counts: dict[uuid.UUID, int] = {r: c for r, c in rows.all()}
    return [counts.get(r, 0) for r in recipient_ids]


async def deliveries_of_notifications(
    session: AsyncSession, notification_ids: Sequence[uuid.UUID]
) -> list[list[Delivery]]:
    rows = (
        await session.scalars(
            select(Delivery)
            .where(Delivery.notification_id.in_(notification_ids))
            .order_by(Delivery.created_at, Delivery.channel)
        )
    ).all()
    grouped: dict[uuid.UUID, list[Delivery]] = {n: [] for n in notification_ids}
    for row in rows:
        grouped.setdefault(row.notification_id, []).append(row)
    return [grouped[n] for n in notification_ids]


class NotificationEvent(BaseModel):
    """A notification as announced on Redis: JSON there, a `Notification` again here."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    recipient_id: uuid.UUID
    category: str
    title: str
    body: str
    status: DeliveryStatus
    delivered_at: datetime | None
    read_at: datetime | None
    subject_type: str | None
    subject_id: uuid.UUID | None
    idempotency_key: str
    sender_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


def as_event(notification: Notification) -> dict[str, Any]:
    return NotificationEvent.model_validate(notification).model_dump(mode="json")


def from_event(data: str | bytes) -> NotificationEvent:
    """A notification as announced (`as_event`), read back. Not an ORM instance: it is only
    read (once for all of a recipient's subscriptions), and building a mapped instance and
    its state was half the cost of an event."""
    return NotificationEvent.model_validate_json(data)
