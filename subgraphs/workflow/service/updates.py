"""Live updates for subscriptions: which instances moved, on the service's Redis channels."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from subgraphs.common.redis import Namespace

ALL_INSTANCES = "instances"


def channel_of(instance_id: uuid.UUID) -> str:
    return f"instance:{instance_id}"


async def announce(redis: Namespace, instance_ids: Iterable[uuid.UUID]) -> None:
    """Tell subscribers (workflowInstanceUpdated, taskAssigned) that these instances moved."""
    for instance_id in set(instance_ids):
        await redis.publish(channel_of(instance_id), {"id": str(instance_id)})
        await redis.publish(ALL_INSTANCES, {"id": str(instance_id)})
