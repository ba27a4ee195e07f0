"""Announcing changes: to subscribers of every replica (Redis pub/sub) and the search cache,
and as domain events for other services (the outbox, relayed to the event stream).

A change is announced after its transaction committed. Redis being down does not undo
a committed change: the announcement is logged as lost, and cached search results expire
on their own (they are also re-checked against access rules on every hit).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.redis import Namespace
from subgraphs.content.models import OutboxEvent

log = logging.getLogger(__name__)

CHANNEL = "documents:changes"
SEARCH_GENERATION = "search:generation"


@dataclass(frozen=True)
class DocumentChange:
    document_id: uuid.UUID
    action: str  # an audit action: document.updated, version.added, share.granted...
    version: int


async def announce(redis: Namespace, change: DocumentChange) -> None:
    try:
        await invalidate_search(redis)
        await redis.publish(
            CHANNEL,
            {
                "document_id": str(change.document_id),
                "action": change.action,
                "version": change.version,
            },
        )
    except RedisError:
        log.warning("could not announce %s of %s", change.action, change.document_id)


async def invalidate_search(redis: Namespace) -> None:
    """Every cached search result names the generation it was computed in: start a new one."""
    await redis.client.incr(redis.key(SEARCH_GENERATION))


async def changes(redis: Namespace) -> AsyncIterator[DocumentChange]:
    async for event in redis.subscribe(CHANNEL):
        try:
            yield DocumentChange(
                document_id=uuid.UUID(event["document_id"]),
                action=str(event["action"]),
                version=int(event["version"]),
            )
        except (KeyError, ValueError, TypeError):
            log.warning("ignoring a malformed document change: %r", event)


# Domain events for other services (communication notifies, workflow moves instances).
DOCUMENT_CREATED = "content.document_created"
DOCUMENT_SHARED = "content.document_shared"
DOCUMENT_VERSION_ADDED = "content.document_version_added"
DOCUMENT_DELETED = "content.document_deleted"


def emit(session: AsyncSession, type: str, **data: object) -> None:
    """Add a domain event to the session: it is committed with the change, or not at all."""
    payload = json.loads(json.dumps(data, default=str))
    session.add(OutboxEvent(type=type, payload=payload))
