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


async def enqueue(sent: Sent, redis: Namespace) -> None:
    """Hand what `send` made to the workers (from the API or the event consumer)."""
    for delivery_id in sent.queued:
        await enqueue_delivery(delivery_id)
    for recipient_id, category, seconds in sent.digests:
        # One digest task per recipient, category and window.
        first = await redis.client.set(
            redis.key("digest", recipient_id, category), "1", nx=True, ex=seconds
        )
        if first:
            await asyncio.to_thread(
                send_digest.apply_async, (str(recipient_id), category), countdown=seconds
            )


async def enqueue_delivery(delivery_id: uuid.UUID) -> None:
    # Celery's client is synchronous: keep it off the event loop.
    await asyncio.to_thread(deliver.delay, str(delivery_id))
