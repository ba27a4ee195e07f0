"""The scheduler: fires due timers, runs queued API requests, takes domain events in.

    python -m subgraphs.workflow scheduler

Any number may run: timers and requests are claimed with FOR UPDATE SKIP LOCKED (see
service/timers.py), and events are read through a consumer group, so replicas share the
work without doing any of it twice. Everything it works from is in PostgreSQL and the
event stream, so a restart loses nothing: a timer that came due while no scheduler ran
fires when one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

import httpx
from redis.exceptions import ResponseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.common import events
from subgraphs.common import redis as hub_redis
from subgraphs.common.database import create_engine, create_sessionmaker, utcnow
from subgraphs.workflow.models import ActionRun, OutboxEvent
from subgraphs.workflow.service import timers, triggers
from subgraphs.workflow.service.updates import announce
from subgraphs.workflow.settings import WorkflowSettings

log = logging.getLogger(__name__)


async def run_timers(
    sessions: async_sessionmaker[AsyncSession], redis: hub_redis.Namespace, poll: float
) -> None:
    while True:
        try:
            touched = await timers.fire_due(sessions)
            await announce(redis, touched)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("firing timers failed (%s); retrying", type(error).__name__)
            touched = []
        if not touched:
            await asyncio.sleep(poll)


async def run_requests_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: WorkflowSettings,
    client: httpx.AsyncClient,
) -> int:
    """Run the pending API requests of actions, one transaction each; how many ran."""
    ran = 0
    while True:
        async with sessions() as session:
            run = await session.scalar(
                select(ActionRun)
                .where(ActionRun.status == "pending")
                .order_by(ActionRun.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if run is None:
                return ran
            run.attempts += 1
            base = settings.service_urls.get(run.spec["service"])
            try:
                if base is None:
                    raise ValueError(f"no URL for the service {run.spec['service']!r}")
                response = await client.request(
                    run.spec["method"],
                    base.rstrip("/") + run.spec["path"],
                    json=run.spec.get("body"),
                )
                if response.status_code >= 400:
                    raise ValueError(f"{response.status_code} {response.text[:300]}")
                run.status, run.error = "succeeded", None
            except (httpx.HTTPError, ValueError) as error:
                run.status, run.error = "failed", str(error) or type(error).__name__
                session.add(
                    OutboxEvent(
                        type="workflow.action_failed",
                        payload={"action_run_id": str(run.id), "instance_id": str(run.instance_id)},
                    )
                )
            run.updated_at = utcnow()
            await session.commit()
            ran += 1


async def run_requests(
    sessions: async_sessionmaker[AsyncSession], settings: WorkflowSettings, poll: float
) -> None:
    async with httpx.AsyncClient(timeout=settings.request_timeout_seconds) as client:
        while True:
            try:
                ran = await run_requests_once(sessions, settings, client)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("running requests failed (%s); retrying", type(error).__name__)
                ran = 0
            if not ran:
                await asyncio.sleep(poll)


async def consume_events(
    sessions: async_sessionmaker[AsyncSession],
    redis: hub_redis.Namespace,
    settings: WorkflowSettings,
) -> None:
    hub = settings.hub
    client = events.connect(hub)
    stream, group = hub.events_stream, settings.consumer_group
    name = f"{socket.gethostname()}-{os.getpid()}"
    try:
        try:
            await client.xgroup_create(stream, group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        backlog = True
        while True:
            try:
                start = "0" if backlog else ">"
                answer: Any = await client.xreadgroup(
                    group, name, {stream: start}, count=20, block=None if backlog else 1000
                )
                entries = [(i, f) for _, items in answer or [] for i, f in items if f]
                backlog = backlog and bool(entries)
                for entry_id, fields in entries:
                    try:
                        event = events.Event.from_fields(fields)
                    except ValueError:
                        await client.xack(stream, group, entry_id)
                        continue
                    async with sessions() as session:
                        await announce(redis, await triggers.handle(session, event))
                    await client.xack(stream, group, entry_id)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("event handling failed (%s); retrying", type(error).__name__)
                backlog = True
                await asyncio.sleep(1)
    finally:
        await client.aclose()


async def run(settings: WorkflowSettings) -> None:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    redis = hub_redis.connect(settings)
    poll = settings.scheduler_poll_seconds
    loops = [
        run_timers(sessions, redis, poll),
        run_requests(sessions, settings, poll),
        consume_events(sessions, redis, settings),
        events.run_outbox_relay(sessions, OutboxEvent, settings.hub, source="workflow"),
    ]
    log.info("scheduler running (timers, requests, events from %s)", settings.hub.events_stream)
    try:
        await asyncio.gather(*loops)
    finally:
        await redis.close()
        await engine.dispose()


def main() -> None:
    from subgraphs.common.observability import configure_logging

    settings = WorkflowSettings()
    configure_logging(
        f"{settings.name}-scheduler",
        level=settings.hub.log_level,
        json_lines=settings.hub.is_production,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))
