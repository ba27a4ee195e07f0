"""Domain events in: an event starts the workflows that wait for it, or moves instances."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.errors import HubError
from subgraphs.common.events import Event
from subgraphs.workflow import definitions
from subgraphs.workflow.models import ProcessedEvent, WorkflowInstance
from subgraphs.workflow.service import definitions as published
from subgraphs.workflow.service.engine import Actor, apply
from subgraphs.workflow.service.instances import definition_of, start_workflow

log = logging.getLogger(__name__)


def _matches(where: dict[str, Any], data: dict[str, Any]) -> bool:
    return all(data.get(field) == value for field, value in where.items())


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def handle(session: AsyncSession, event: Event) -> list[uuid.UUID]:
    """Act on `event` once (the caller commits nothing: this does); the instances touched."""
    session.add(ProcessedEvent(event_id=event.id))
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return []  # seen before
    touched: list[uuid.UUID] = []
    rows = await published.list_latest(session)
    for row in rows:
        definition = definitions.from_spec(row.spec)
        starts = definition.starts_on
        if starts and starts.event == event.type and _matches(starts.where, event.data):
            subject = _uuid(event.data.get(starts.subject_id))
            if subject is None:
                log.error("event %s: %s is not an id", event.id, starts.subject_id)
                continue
            try:
                instance = await start_workflow(
                    session,
                    definition_key=definition.key,
                    subject_type=definition.subject,
                    subject_id=subject,
                    data={k: v for k, v in event.data.items() if isinstance(k, str)},
                    system=True,
                    commit=False,
                )
                touched.append(instance.id)
            except HubError as error:
                log.error("event %s could not start %s: %s", event.id, definition.key, error)
    touched += await _move_instances(session, event)
    await session.commit()
    return touched


async def _move_instances(session: AsyncSession, event: Event) -> list[uuid.UUID]:
    """Running instances about the event's subject, with a transition waiting for it."""
    fields = {
        t.subject_id
        for row in await published.list_latest(session)
        for t in definitions.from_spec(row.spec).transitions
        if t.event == event.type and t.subject_id
    }
    subjects = {s for s in (_uuid(event.data.get(f)) for f in fields) if s}
    if not subjects:
        return []
    instances = (
        await session.scalars(
            select(WorkflowInstance).where(
                WorkflowInstance.subject_id.in_(subjects), WorkflowInstance.status == "running"
            )
        )
    ).all()
    touched = []
    for instance in instances:
        if instance.definition_id is None:
            continue
        definition = await definition_of(session, instance)
        for transition in definition.transitions_from(instance.state):
            if transition.event != event.type:
                continue
            if _uuid(event.data.get(transition.subject_id or "")) != instance.subject_id:
                continue
            try:
                async with session.begin_nested():
                    await apply(session, instance, definition, transition, actor=Actor())
                touched.append(instance.id)
            except HubError as error:
                log.info("event %s left instance %s as it was: %s", event.id, instance.id, error)
            break
    return touched
