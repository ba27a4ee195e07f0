"""Domain events between services: one Redis stream, fed through a transactional outbox.

A service that has news for others (identity: "verify this address"; content: "a
document was shared with you") adds an outbox row in the same transaction as the change
itself, then a relay appends committed rows to the stream with XADD and marks them
published. An event is therefore never lost between the commit and the stream (the relay
picks it up whenever it runs next) and never published for a change that was rolled
back. A crash between XADD and marking the row published publishes it twice: consumers
deduplicate on the event `id`.

The stream, `HUB_EVENTS_STREAM` (default `hub:events`), is shared by the deployment;
each entry is the envelope below, every field a string:

    id           UUID of the event, unique; the consumers' idempotency key
    type         "<source>.<what happened>", e.g. identity.verify_email_requested
    source       the publishing service, e.g. identity
    occurred_at  ISO 8601 time of the change, UTC
    data         JSON object: the event's facts (its fields depend on `type`)

Payloads may carry secrets (identity's one-time tokens): nothing here logs them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from subgraphs.common.database import utcnow
from subgraphs.common.settings import HubSettings

log = logging.getLogger(__name__)

# Old entries are trimmed (approximately) beyond this many; consumers keep up far sooner.
STREAM_MAX_LENGTH = 100_000


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    source: str
    occurred_at: str
    data: dict[str, Any]

    def fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "occurred_at": self.occurred_at,
            "data": json.dumps(self.data, default=str),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Event:
        """The event in a stream entry; ValueError when the entry is not a Hub event."""
        try:
            data = json.loads(fields.get("data") or "{}")
            if not isinstance(data, dict):
                raise ValueError("data is not a JSON object")
            return cls(
                id=fields["id"],
                type=fields["type"],
                source=fields.get("source", ""),
                occurred_at=fields.get("occurred_at", ""),
                data=data,
            )
        except (KeyError, json.JSONDecodeError) as error:
            raise ValueError(f"not a Hub event: {error}") from None


def connect(hub: HubSettings) -> aioredis.Redis:
    """A client for the Redis that holds the event stream (decoded strings)."""
    return aioredis.Redis.from_url(
        hub.events_redis_url or hub.redis_url, decode_responses=True, health_check_interval=30
    )


async def publish(client: aioredis.Redis, stream: str, event: Event) -> str:
    """Append the event to the stream; the entry's stream id."""
    return str(
        await client.xadd(
            stream,
            event.fields(),  # type: ignore[arg-type]
            maxlen=STREAM_MAX_LENGTH,
            approximate=True,
        )
    )


# An outbox table (identity's `OutboxEvent` is one): a mapped class with the columns
# id, type, payload (JSON object), created_at and published_at (null until relayed).
OutboxModel = Any


async def relay_outbox(
    session: AsyncSession,
    model: OutboxModel,
    client: aioredis.Redis,
    stream: str,
    *,
    source: str,
    batch: int = 100,
) -> int:
    """Publish the oldest unpublished outbox rows; how many were published.

    FOR UPDATE SKIP LOCKED lets several replicas relay at once without publishing a row
    twice (short of a crash between XADD and the commit).
    """
    rows = (
        await session.scalars(
            select(model)
            .where(model.published_at.is_(None))
            .order_by(model.created_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in rows:
        await publish(
            client,
            stream,
            Event(
                id=str(row.id),
                type=row.type,
                source=source,
                occurred_at=row.created_at.isoformat(),
                data=row.payload,
            ),
        )
        row.published_at = utcnow()
    await session.commit()
    return len(rows)


async def run_outbox_relay(
    sessions: async_sessionmaker[AsyncSession],
    model: OutboxModel,
    hub: HubSettings,
    *,
    source: str,
    poll_seconds: float = 0.5,
) -> None:
    """Relay forever (until cancelled), waking every `poll_seconds` when idle."""
    client = connect(hub)
    try:
        while True:
            try:
                async with sessions() as session:
                    published = await relay_outbox(
                        session, model, client, hub.events_stream, source=source
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis or PostgreSQL away: retry, rows stay unpublished
                # The type only: an event's payload may hold a token.
                log.warning("outbox relay failed (%s); retrying", type(error).__name__)
                published = 0
            if not published:
                await asyncio.sleep(poll_seconds)
    finally:
        await client.aclose()
