"""Announcing changes: on Redis pub/sub for subscribers in every replica, and to the cache.

A change is announced after its transaction committed. Redis being down does not undo
a committed change: the announcement is logged as lost, and cached search results expire
on their own (they are also re-checked against access rules on every hit).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from subgraphs.common.redis import Namespace

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
        # Every cached search result names the generation it was computed in.
        await redis.client.incr(redis.key(SEARCH_GENERATION))
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
