"""What a worker does with one delivery: claim it, send it, record the attempt.

Exactly-once bookkeeping rests on the delivery row, not on the broker. A task claims its
delivery with one conditional UPDATE (queued -> sending), so a task that Celery hands out
twice finds nothing to do the second time; a worker that dies mid-send leaves a claim that
expires after `lease` seconds, and the task, delivered again (acks late), claims it anew.
A resend after such a crash carries the same Message-ID / webhook-id, so a receiver can
recognise it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Float, and_, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.database import utcnow
from subgraphs.common.errors import Conflict, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.common.redis import Namespace
from subgraphs.communication import channels
from subgraphs.communication.models import (
    Channel,
    Contact,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    DeliveryStatus,
    Notification,
    Preference,
)
from subgraphs.communication.service.notifications import as_event, inbox_channel
from subgraphs.communication.settings import CommunicationSettings
from subgraphs.communication.templates import templates_from

LIVE = (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.DIGEST_PENDING)
SWEEP_BATCH = 200
# Once sent or given up, the body keeps no secret (a one-time link): the redacted one stays.
_REDACTED = {
    "body": func.coalesce(Delivery.redacted_body, Delivery.body),
    "redacted_body": None,
}


def lease_seconds(settings: CommunicationSettings) -> float:
    """How long a claim holds: longer than any send can take."""
    return settings.send_timeout_seconds * 2 + 5


def backoff(settings: CommunicationSettings, attempt: int) -> float:
    """Seconds before retry `attempt` (1-based): exponential, capped, with full jitter."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Outcome:
    """What the task does next: nothing, or run again in `retry_in` seconds."""

    retry_in: float | None = None


async def deliver(
    session: AsyncSession, redis: Namespace, settings: CommunicationSettings, delivery_id: uuid.UUID
) -> Outcome:
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds(settings))
    delivery = await session.scalar(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            or_(
                Delivery.status == DeliveryState.QUEUED,
                and_(Delivery.status == DeliveryState.SENDING, Delivery.claimed_at < stale),
            ),
        )
        .values(status=DeliveryState.SENDING, claimed_at=now, attempts=Delivery.attempts + 1)
        .returning(Delivery)
    )
    await session.commit()
    if delivery is None:
        current = await session.get(Delivery, delivery_id)
        if current is not None and current.status == DeliveryState.SENDING and current.claimed_at:
            # Another worker holds it, or a dead one did: look again once the claim expires.
            held = (current.claimed_at - stale).total_seconds()
            return Outcome(retry_in=max(held, 1.0))
        return Outcome()  # sent, dead or gone: this task was a duplicate

    try:
        await _send(session, redis, settings, delivery)
    except channels.SendFailed as failure:
        return await _failed(session, settings, delivery, failure)
    await _sent(session, redis, delivery)
    return Outcome()


async def _send(
    session: AsyncSession, redis: Namespace, settings: CommunicationSettings, delivery: Delivery
) -> None:
    if delivery.channel == Channel.IN_APP:
        return  # announced once the delivery is recorded as sent
    if delivery.channel == Channel.EMAIL:
        await channels.send_email(settings, delivery)
        return
    contact = await session.get(Contact, delivery.recipient_id)
    if contact is None or not contact.webhook_secret:
        raise channels.SendFailed("the recipient has no webhook any more", permanent=True)
    await channels.send_webhook(settings, delivery, contact.webhook_secret)


async def _sent(session: AsyncSession, redis: Namespace, delivery: Delivery) -> None:
    now = utcnow()
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(status=DeliveryState.SENT, sent_at=now, last_error=None, **_REDACTED)
    )
    session.add(DeliveryAttempt(delivery_id=delivery.id, number=delivery.attempts, status="sent"))
    notification = await session.scalar(
        update(Notification)
        .where(Notification.id == delivery.notification_id)
        .values(
            status=DeliveryStatus.DELIVERED,
            delivered_at=func.coalesce(Notification.delivered_at, now),
        )
        .returning(Notification)
    )
    await session.commit()
    if delivery.channel == Channel.IN_APP and notification is not None:
        await redis.publish(inbox_channel(notification.recipient_id), as_event(notification))


async def _failed(
    session: AsyncSession,
    settings: CommunicationSettings,
    delivery: Delivery,
    failure: channels.SendFailed,
) -> Outcome:
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            status="failed",
            reason=failure.reason[:2000],
        )
    )
    out_of_attempts = delivery.attempts >= settings.max_attempts
    if failure.permanent or out_of_attempts:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(
                status=DeliveryState.DEAD,
                dead_at=utcnow(),
                last_error=failure.reason,
                **_REDACTED,
            )
        )
        await _maybe_failed(session, delivery.notification_id)
        await session.commit()
        return Outcome()
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        # The task queues its own retry (Celery's retry) as it returns.
        .values(
            status=DeliveryState.QUEUED,
            claimed_at=None,
            enqueued_at=utcnow(),
            last_error=failure.reason,
        )
    )
    await session.commit()
    return Outcome(retry_in=backoff(settings, delivery.attempts))


async def _maybe_failed(session: AsyncSession, notification_id: uuid.UUID) -> None:
    """The notification failed when none of its deliveries is sent or still under way."""
    alive = await session.scalar(
        select(Delivery.id)
        .where(
            Delivery.notification_id == notification_id,
            Delivery.status.in_([*LIVE, DeliveryState.SENT, DeliveryState.DIGESTED]),
        )
        .limit(1)
    )
    if alive is None:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.delivered_at.is_(None))
            .values(status=DeliveryStatus.FAILED)
        )


async def dead_letters(session: AsyncSession, *, first: int, after: str | None) -> Page[Delivery]:
    stmt = select(Delivery).where(Delivery.status == DeliveryState.DEAD)
    return await keyset_page(session, stmt, Delivery, first=first, after=after)


async def replay(session: AsyncSession, delivery_id: uuid.UUID) -> Delivery:
    """Put a dead delivery back in the queue with a fresh set of attempts."""
    delivery = await session.scalar(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryState.DEAD)
        .values(
            status=DeliveryState.QUEUED,
            attempts=0,
            dead_at=None,
            claimed_at=None,
            enqueued_at=None,
        )
        .returning(Delivery)
    )
    if delivery is None:
        if await session.get(Delivery, delivery_id) is None:
            raise NotFound("delivery not found")
        raise Conflict("only a dead delivery can be replayed")
    await session.execute(
        update(Notification)
        .where(
            Notification.id == delivery.notification_id,
            Notification.status == DeliveryStatus.FAILED,
        )
        .values(status=DeliveryStatus.QUEUED)
    )
    await session.commit()
    return delivery


async def sweep_stranded(session: AsyncSession, settings: CommunicationSettings) -> list[uuid.UUID]:
    """Queued deliveries no task will ever run, taken to be handed to the broker again.

    Stranded: never handed to the broker for `stranded_after_seconds` (it was unreachable
    when the delivery was stored, or the process died in between), or handed over so long
    ago — past the visibility timeout and the longest retry — that the broker lost the task.
    One UPDATE marks them handed over, so concurrent sweeps take each once; whatever fails
    to reach the broker again is unmarked by `handed_over` for the next sweep.
    """
    now = utcnow()
    never = now - timedelta(seconds=settings.stranded_after_seconds)
    lost = now - timedelta(
        seconds=settings.task_visibility_timeout
        + settings.retry_max_seconds
        + settings.stranded_after_seconds
    )
    stranded = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryState.QUEUED,
            or_(
                and_(Delivery.enqueued_at.is_(None), Delivery.created_at < never),
                Delivery.enqueued_at < lost,
            ),
        )
        .order_by(Delivery.created_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    taken = await session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(stranded))
        .values(enqueued_at=now)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(taken)
    await session.commit()
    return ids


async def overdue_digests(
    session: AsyncSession, settings: CommunicationSettings
) -> list[tuple[uuid.UUID, str]]:
    """(recipient, category) whose digest is overdue: pending emails older than their
    window plus `stranded_after_seconds` (the digest task never reached the broker, or the
    window's preference is gone). `make_digest` takes each pending row once, so a digest
    asked for twice is still one email."""
    window = cast(
        func.coalesce(Preference.digest_seconds, 0) + settings.stranded_after_seconds, Float
    )
    rows = await session.execute(
        select(Delivery.recipient_id, Delivery.category)
        .outerjoin(
            Preference,
            and_(
                Preference.user_id == Delivery.recipient_id,
                Preference.category == Delivery.category,
                Preference.channel == Channel.EMAIL,
            ),
        )
        .where(
            Delivery.status == DeliveryState.DIGEST_PENDING,
            Delivery.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, window),
        )
        .group_by(Delivery.recipient_id, Delivery.category)
        .limit(SWEEP_BATCH)
    )
    return [(recipient, category) for recipient, category in rows.all()]


async def handed_over(
    session: AsyncSession, handed: Sequence[uuid.UUID], failed: Sequence[uuid.UUID]
) -> None:
    """Record which deliveries' tasks reached the broker (and which did not, for the sweep)."""
    if handed:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(handed))
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    if failed:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(failed), Delivery.status == DeliveryState.QUEUED)
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
    await session.commit()


async def attempts_of_deliveries(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> list[list[DeliveryAttempt]]:
    rows = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(DeliveryAttempt.number, DeliveryAttempt.created_at)
        )
    ).all()
    grouped: dict[uuid.UUID, list[DeliveryAttempt]] = {d: [] for d in delivery_ids}
    for row in rows:
        grouped.setdefault(row.delivery_id, []).append(row)
    return [grouped[d] for d in delivery_ids]


async def make_digest(
    session: AsyncSession, settings: CommunicationSettings, recipient_id: uuid.UUID, category: str
) -> uuid.UUID | None:
    """Batch the recipient's pending emails of `category` into one digest delivery; its id.

    The pending rows are locked and switched to `digested` in the transaction that creates
    the digest, so running this twice makes one digest.
    """
    pending = (
        await session.scalars(
            select(Delivery)
            .where(
                Delivery.recipient_id == recipient_id,
                Delivery.category == category,
                Delivery.status == DeliveryState.DIGEST_PENDING,
            )
            .order_by(Delivery.created_at)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not pending:
        return None
    notifications = {
        n.id: n
        for n in await session.scalars(
            select(Notification).where(Notification.id.in_([d.notification_id for d in pending]))
        )
    }
    items: list[dict[str, Any]] = [
        {
            "title": notifications[d.notification_id].title,
            "body": notifications[d.notification_id].body,
        }
        for d in pending
    ]
    contact = await session.get(Contact, recipient_id)
    rendered = templates_from(settings.templates_file)["digest"].render(
        "email",
        (contact.locale if contact else None) or settings.default_locale,
        {"category": category, "notifications": items, "app_url": settings.app_url},
        default_locale=settings.default_locale,
    )
    digest = Delivery(
        id=uuid.uuid4(),
        key=f"digest:{pending[0].id}",
        notification_id=pending[-1].notification_id,
        recipient_id=recipient_id,
        category=category,
        channel=Channel.EMAIL,
        status=DeliveryState.QUEUED,
        destination=pending[-1].destination,
        subject=rendered["subject"],
        body=rendered["body"],
        attempts=0,
    )
    session.add(digest)
    await session.flush()
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_([d.id for d in pending]))
        .values(status=DeliveryState.DIGESTED, digest_id=digest.id)
    )
    await session.commit()
    return digest.id
