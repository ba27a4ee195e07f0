"""Workflow's domain rules. GraphQL resolvers and REST routes both call these."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.dataloaders import grouped, ordered
from subgraphs.common.errors import BadInput, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.workflow.models import WorkflowInstance

DEFINITION_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
SUBJECT_TYPES = {"Document", "User"}
INITIAL_STATE = "started"


async def start_workflow(
    session: AsyncSession, *, definition_key: str, subject_type: str, subject_id: uuid.UUID
) -> WorkflowInstance:
    if not DEFINITION_KEY.match(definition_key):
        raise BadInput(
            "definitionKey must be lower-case letters, digits, '_', '.' or '-' "
            "(at most 100, starting with a letter)",
            field="definitionKey",
        )
    if subject_type not in SUBJECT_TYPES:
        raise BadInput(
            f"subjectType must be one of {', '.join(sorted(SUBJECT_TYPES))}", field="subjectType"
        )
    instance = WorkflowInstance(
        definition_key=definition_key,
        subject_type=subject_type,
        subject_id=subject_id,
        state=INITIAL_STATE,
    )
    session.add(instance)
    await session.commit()
    return instance


async def get_instance(session: AsyncSession, instance_id: uuid.UUID) -> WorkflowInstance:
    instance = await session.get(WorkflowInstance, instance_id)
    if instance is None:
        raise NotFound("workflow instance not found")
    return instance


async def instances_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[WorkflowInstance | None]:
    rows = (
        await session.scalars(select(WorkflowInstance).where(WorkflowInstance.id.in_(set(ids))))
    ).all()
    return ordered(ids, rows, key=lambda instance: instance.id)


async def instances_of_documents(
    session: AsyncSession, document_ids: Sequence[uuid.UUID]
) -> list[list[WorkflowInstance]]:
    rows = (
        await session.scalars(
            select(WorkflowInstance)
            .where(
                WorkflowInstance.subject_type == "Document",
                WorkflowInstance.subject_id.in_(set(document_ids)),
            )
            .order_by(WorkflowInstance.created_at.desc(), WorkflowInstance.id.desc())
        )
    ).all()
    return grouped(document_ids, rows, key=lambda instance: instance.subject_id)


async def list_instances(
    session: AsyncSession, *, first: int, after: str | None
) -> Page[WorkflowInstance]:
    return await keyset_page(
        session, select(WorkflowInstance), WorkflowInstance, first=first, after=after
    )
