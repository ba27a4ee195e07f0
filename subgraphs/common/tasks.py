"""Celery for the subgraphs that have background work, on their own Redis namespace.

Tasks are synchronous functions (Celery's model) that run async service code on one
event loop per worker process, kept for the life of the process so its connection
pool is reused between tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from celery import Celery, signals
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from subgraphs.common import redis
from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.observability import configure_logging, request_id
from subgraphs.common.settings import ServiceSettings

T = TypeVar("T")


def create_celery(settings: ServiceSettings, include: list[str]) -> Celery:
    app = Celery(f"hub-{settings.name}", broker=settings.redis_dsn, include=include)
    app.conf.update(
        # Queues and bookkeeping keys live under the service's namespace.
        broker_transport_options={"global_keyprefix": settings.key_prefix},
        task_default_queue=settings.name,
        # A task is acknowledged once it finished, and requeued if its worker dies
        # mid-way: delivery is at least once, and tasks are written to be idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    # The worker logs like the service, each task's lines under the request id that queued it.
    @signals.setup_logging.connect(weak=False)
    def worker_logging(loglevel: int | str | None = None, **_: object) -> None:
        # The worker's --loglevel wins: devstack waits for its INFO line "... ready.".
        level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
        hub = settings.hub
        configure_logging(
            f"{settings.name}-worker",
            level=level or hub.log_level,
            json_lines=hub.is_production,
        )

    return app


# A task carries the request id of the request that queued it (a message header) ...
REQUEST_ID_TASK_HEADER = "hub_request_id"


@signals.before_task_publish.connect
def _send_request_id(headers: dict[str, object] | None = None, **_: object) -> None:
    current = request_id.get()
    if current and headers is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, current)


# ... and the worker sets it for the task's duration.
@signals.task_prerun.connect
def _receive_request_id(task: object = None, **_: object) -> None:
    request = getattr(task, "request", None)
    request_id.set(getattr(request, REQUEST_ID_TASK_HEADER, None))


@signals.task_postrun.connect
def _forget_request_id(**_: object) -> None:
    request_id.set(None)


class AsyncResources:
    """A worker process's event loop, database and Redis, created on first use.

    Created lazily so that nothing is opened in the parent process before the prefork
    pool forks its children.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._runner: asyncio.Runner | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._redis: redis.Namespace | None = None

    def run(
        self, work: Callable[[async_sessionmaker[AsyncSession], redis.Namespace], Awaitable[T]]
    ) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self._call(work))

    async def _call(
        self, work: Callable[[async_sessionmaker[AsyncSession], redis.Namespace], Awaitable[T]]
    ) -> T:
        if self._sessions is None or self._redis is None:
            self._engine = create_engine(self.settings)
            self._sessions = create_sessionmaker(self._engine)
            self._redis = redis.connect(self.settings)
        return await work(self._sessions, self._redis)
