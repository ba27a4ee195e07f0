"""Communication's background work, run by its Celery worker:

celery -A subgraphs.communication.tasks worker
"""

from __future__ import annotations

import uuid

from subgraphs.common.tasks import AsyncResources, create_celery
from subgraphs.communication import service
from subgraphs.communication.settings import CommunicationSettings

settings = CommunicationSettings()
app = create_celery(settings, include=[__name__])
resources = AsyncResources(settings)


@app.task(name="communication.deliver_in_app")
def deliver_in_app(notification_id: str) -> None:
    async def work(sessions, redis) -> None:  # type: ignore[no-untyped-def]
        async with sessions() as session:
            await service.deliver_in_app(session, redis, uuid.UUID(notification_id))

    resources.run(work)
