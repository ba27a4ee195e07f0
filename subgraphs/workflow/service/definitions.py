"""Publishing definitions: each upload is a new version; instances keep theirs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal
from subgraphs.common.dataloaders import ordered
from subgraphs.common.errors import Conflict
from subgraphs.workflow import definitions
from subgraphs.workflow.models import WorkflowDefinition
from subgraphs.workflow.service.access import require_admin


async def publish(
    session: AsyncSession, principal: Principal | None, source: str
) -> WorkflowDefinition:
    """Validate `source` and store it as the next version of its key."""
    caller = require_admin(principal)
    return await _store(session, definitions.parse(source), source, caller.user_id)


async def _store(
    session: AsyncSession,
    definition: definitions.Definition,
    source: str,
    published_by: uuid.UUID | None,
) -> WorkflowDefinition:
    latest = await session.scalar(
        select(func.max(WorkflowDefinition.version)).where(WorkflowDefinition.key == definition.key)
    )
    row = WorkflowDefinition(
        key=definition.key,
        version=(latest or 0) + 1,
        name=definition.name,
        source=source,
        spec=definitions.to_spec(definition),
        published_by=published_by,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(
            "another version of this definition was published at the same time"
        ) from None
    return row


async def latest(session: AsyncSession, key: str) -> WorkflowDefinition | None:
    """The newest version of `key`; a built-in template is published as version 1 on first use."""
    row = await session.scalar(
        select(WorkflowDefinition)
        .where(WorkflowDefinition.key == key)
        .order_by(WorkflowDefinition.version.desc())
        .limit(1)
    )
    if row is not None:
        return row
    source = definitions.builtin_source(key)
    if source is None:
        return None
    try:
        return await _store(session, definitions.parse(source), source, None)
    except Conflict:  # loaded concurrently by another request
        return await latest(session, key)


async def list_latest(session: AsyncSession) -> list[WorkflowDefinition]:
    """The newest version of every key, built-in templates included, by key."""
    for key in definitions.builtin_keys():
        await latest(session, key)
    newest = (
        select(WorkflowDefinition.key, func.max(WorkflowDefinition.version).label("version"))
        .group_by(WorkflowDefinition.key)
        .subquery()
    )
    rows = await session.scalars(
        select(WorkflowDefinition)
        .join(
            newest,
            (WorkflowDefinition.key == newest.c.key)
            & (WorkflowDefinition.version == newest.c.version),
        )
        .order_by(WorkflowDefinition.key)
    )
    return list(rows.all())


async def versions_of(session: AsyncSession, key: str) -> list[WorkflowDefinition]:
    rows = await session.scalars(
        select(WorkflowDefinition)
        .where(WorkflowDefinition.key == key)
        .order_by(WorkflowDefinition.version.desc())
    )
    return list(rows.all())


async def definitions_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[WorkflowDefinition | None]:
    rows = (
        await session.scalars(select(WorkflowDefinition).where(WorkflowDefinition.id.in_(set(ids))))
    ).all()
    return ordered(ids, rows, key=lambda row: row.id)
