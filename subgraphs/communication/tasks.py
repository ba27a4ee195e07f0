"""Communication's background work, run by its Celery worker:

celery -A subgraphs.communication.tasks worker

Tasks are acknowledged late (subgraphs/common/tasks.py): a worker that dies mid-task
leaves the message to be delivered again, and `service.delivery.deliver` makes the second
run harmless. Retries back off exponentially with jitter, then the delivery is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from kombu.exceptions import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.common.redis import Namespace
from subgraphs.common.tasks import AsyncResources, create_celery
from subgraphs.communication.service import delivery
from subgraphs.communication.service.notifications import Sent
from subgraphs.communication.settings import CommunicationSettings

log = logging.getLogger(__name__)

settings = CommunicationSettings()
app = create_celery(settings, include=[__name__])
app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "visibility_timeout": settings.task_visibility_timeout,
    # How often a worker looks for tasks of dead workers that are past their visibility
    # timeout (kombu's default looks every 10 s but scans only every 10th time).
    "unacked_restore_interval": max(1, min(60, settings.task_visibility_timeout // 4)),
    "unacked_restore_throttle": 1,
}
resources = AsyncResources(settings)


@app.task(name="communication.deliver", bind=True, max_retries=None)
def deliver(self, delivery_id: str) -> None:  # type: ignore[no-untyped-def]
    async def work(
        sessions: async_sessionmaker[AsyncSession], redis: Namespace
    ) -> delivery.Outcome:
        async with sessions() as session:
            return await delivery.deliver(session, redis, settings, uuid.UUID(delivery_id))

    outcome = resources.run(work)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)


@app.task(name="communication.send_digest")
def send_digest(recipient_id: str, category: str) -> None:
    async def work(
        sessions: async_sessionmaker[AsyncSession], redis: Namespace
    ) -> uuid.UUID | None:
        async with sessions() as session:
            return await delivery.make_digest(session, settings, uuid.UUID(recipient_id), category)

    digest = resources.run(work)
    if digest is not None:
        deliver.delay(str(digest))

        async def handed(sessions: async_sessionmaker[AsyncSession], redis: Namespace) -> None:
            async with sessions() as session:
                await delivery.handed_over(session, [digest], [])

        resources.run(handed)


async def enqueue(session: AsyncSession, sent: Sent, redis: Namespace) -> None:
    """Hand what `send` made to the workers (from the API or the event consumer).

    The notification is stored whatever happens here: a delivery whose task cannot reach
    the broker is queued again by the sweep (`delivery.sweep_stranded`).
    """
    await enqueue_deliveries(session, sent.queued)
    for recipient_id, category, seconds in sent.digests:
        # One digest task per recipient, category and window.
        key = redis.key("digest", recipient_id, category)
        if not await redis.client.set(key, "1", nx=True, ex=seconds):
            continue
        try:
            await asyncio.to_thread(
                send_digest.apply_async, (str(recipient_id), category), countdown=seconds
            )
        except (OperationalError, OSError) as error:
            log.warning("digest not scheduled (%s); the next notification tries again", error)
            await redis.client.delete(key)


async def enqueue_deliveries(session: AsyncSession, delivery_ids: list[uuid.UUID]) -> None:
    """Queue a task per delivery, and record which reached the broker."""
    handed: list[uuid.UUID] = []
    for index, delivery_id in enumerate(delivery_ids):
        try:
            # Celery's client is synchronous: keep it off the event loop.
            await asyncio.to_thread(deliver.delay, str(delivery_id))
        except (OperationalError, OSError) as error:
            # The broker is away: the others would fail the same way, only slower.
            log.warning(
                "%d deliveries not queued (%s); the sweep queues them again",
                len(delivery_ids) - index,
                type(error).__name__,
            )
            await delivery.handed_over(session, handed, delivery_ids[index:])
            return
        handed.append(delivery_id)
    await delivery.handed_over(session, handed, [])
