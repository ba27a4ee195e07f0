"""The event consumer: domain events from the deployment's stream become notifications.

    python -m subgraphs.communication consume-events

It reads with a consumer group, so replicas share the work, and acknowledges an entry only
once its notifications are stored and their deliveries queued. An entry read but not
acknowledged (the process died) is read again: by this consumer when it restarts (its
own pending entries come first), or by another replica once it has been idle for
`CLAIM_IDLE_MS` (XAUTOCLAIM). Each notification's idempotency key is derived from the
event id, so reading an event twice notifies once.

The same process sweeps stranded deliveries (stored, but their task never reached the
broker) back into the queue every `sweep_interval_seconds`: Celery beat is not needed.

SIGTERM (and SIGINT) stop it between two entries: the entry in hand is stored and
acknowledged first, a blocking read waits at most `READ_BLOCK_MS`, and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.common import events
from subgraphs.common import redis as hub_redis
from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.errors import BadInput
from subgraphs.communication import tasks
from subgraphs.communication.rules import Rule, rules_from
from subgraphs.communication.service import delivery, notifications, preferences
from subgraphs.communication.settings import CommunicationSettings

log = logging.getLogger(__name__)

CLAIM_IDLE_MS = 60_000
READ_BLOCK_MS = 1000
BATCH = 20


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> None:
    """Create the group at the stream's start: events published before it are read too."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


async def handle(
    session: AsyncSession,
    settings: CommunicationSettings,
    redis: hub_redis.Namespace,
    event: events.Event,
) -> int:
    """Store the notifications `event` calls for and queue their delivery; how many."""
    made = 0
    for rule in rules_from(settings.rules_file, settings.templates_file):
        if rule.event != event.type:
            continue
        for recipient in rule.recipient_ids(event.data):
            made += await _apply(session, settings, redis, rule, event, recipient)
    return made


async def _apply(
    session: AsyncSession,
    settings: CommunicationSettings,
    redis: hub_redis.Namespace,
    rule: Rule,
    event: events.Event,
    recipient: str,
) -> int:
    try:
        recipient_id = uuid.UUID(recipient)
        subject_id = uuid.UUID(str(event.data[rule.subject_id])) if rule.subject_id else None
    except (ValueError, KeyError):
        log.error("event %s (%s): malformed ids, rule %s skipped", event.id, event.type, rule.name)
        return 0
    if rule.contact:
        await preferences.remember_contact(
            session,
            recipient_id,
            **{field: event.data.get(source) for field, source in rule.contact.items()},
        )
    sent = await notifications.send(
        session,
        settings,
        recipient_id=recipient_id,
        template_key=rule.template,
        # Events may grow fields: a template takes the ones it declares.
        variables=event.data,
        strict_variables=False,
        idempotency_key=f"event:{event.id}:{rule.name}:{recipient_id}",
        category=rule.category,
        channels=rule.channels,
        transactional=rule.transactional,
        subject_type=rule.subject_type,
        subject_id=subject_id,
    )
    # Queued again when the event is read twice: the delivery itself runs once.
    sent.queued = sent.queued or [
        d.id
        for d in (await notifications.deliveries_of_notifications(session, [sent.notification.id]))[
            0
        ]
        if d.status == "queued"
    ]
    await tasks.enqueue(session, sent, redis)
    return 1


async def consume(
    settings: CommunicationSettings,
    *,
    name: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Read and handle events until `stop` is set (or forever)."""
    hub = settings.hub
    stream, group, name = hub.events_stream, settings.consumer_group, name or consumer_name()
    client = events.connect(hub)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    redis = hub_redis.connect(settings)
    stop = stop or asyncio.Event()
    sweeper = asyncio.create_task(sweep_stranded(sessions, settings, stop))
    try:
        await ensure_group(client, stream, group)
        log.info("consuming events from %s as %s/%s", stream, group, name)
        backlog = True  # our own pending entries first (read before a crash, never acked)
        while not stop.is_set():
            try:
                if backlog:
                    entries = await _read(client, stream, group, name, "0")
                    backlog = bool(entries)
                else:
                    _, claimed, _ = await client.xautoclaim(
                        stream, group, name, CLAIM_IDLE_MS, "0-0", count=BATCH
                    )
                    entries = claimed or await _read(
                        client, stream, group, name, ">", block=READ_BLOCK_MS
                    )
                for entry_id, fields in entries:
                    await _process(
                        client, sessions, settings, redis, stream, group, entry_id, fields
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # PostgreSQL or Redis away: the entry stays pending and is read again.
                log.warning("event handling failed (%s); retrying", type(error).__name__)
                backlog = True
                await asyncio.sleep(1)
    finally:
        stop.set()
        await sweeper
        await client.aclose()
        await redis.close()
        await engine.dispose()


async def sweep_stranded(
    sessions: async_sessionmaker[AsyncSession], settings: CommunicationSettings, stop: asyncio.Event
) -> None:
    """Every `sweep_interval_seconds` until `stop`: queue stranded deliveries again."""
    while not stop.is_set():
        try:
            async with sessions() as session:
                stranded = await delivery.sweep_stranded(session, settings)
                if stranded:
                    log.info("queueing %d stranded deliveries again", len(stranded))
                    await tasks.enqueue_deliveries(session, stranded)
                for recipient_id, category in await delivery.overdue_digests(session, settings):
                    log.info("digest of %s overdue: sending it now", category)
                    await asyncio.to_thread(tasks.send_digest.delay, str(recipient_id), category)
        except Exception as error:
            log.warning("sweeping stranded deliveries failed (%s)", type(error).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)


async def _read(
    client: aioredis.Redis, stream: str, group: str, name: str, start: str, block: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    answer: Any = await client.xreadgroup(group, name, {stream: start}, count=BATCH, block=block)
    return [
        (entry_id, fields) for _, entries in answer or [] for entry_id, fields in entries if fields
    ]


async def _process(
    client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: CommunicationSettings,
    redis: hub_redis.Namespace,
    stream: str,
    group: str,
    entry_id: str,
    fields: dict[str, str],
) -> None:
    try:
        event = events.Event.from_fields(fields)
        async with sessions() as session:
            await handle(session, settings, redis, event)
    except (ValueError, BadInput) as error:
        # It will never succeed (malformed, or a template's variables missing): not retried.
        # The message only: event data may carry a token.
        log.error("event %s refused: %s", entry_id, getattr(error, "message", error))
    await client.xack(stream, group, entry_id)


def main() -> None:
    from subgraphs.common.observability import configure_logging

    settings = CommunicationSettings()
    configure_logging(
        settings.name, level=settings.hub.log_level, json_lines=settings.hub.is_production
    )
    asyncio.run(_until_signalled(settings))


async def _until_signalled(settings: CommunicationSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await consume(settings, stop=stop)
    log.info("stopped")
