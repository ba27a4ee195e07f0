"""Workflow instances: start, act, cancel, read. GraphQL and REST both call these."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.dataloaders import grouped, ordered
from subgraphs.common.errors import BadInput, Conflict, Forbidden, NotFound
from subgraphs.common.pagination import Page, keyset_page
from subgraphs.workflow import definitions
from subgraphs.workflow.models import (
    ActionRun,
    Task,
    Transition,
    WorkflowDefinition,
    WorkflowInstance,
)
from subgraphs.workflow.service import definitions as published
from subgraphs.workflow.service.access import is_admin, require_admin, require_role
from subgraphs.workflow.service.engine import (
    Actor,
    apply,
    enter_state,
    flush_instance,
    leave_state,
    queue_actions,
)

DEFINITION_KEY = definitions.KEY
SUBJECT_TYPES = {"Document", "User"}
# An instance of a key that names no definition: a plain record, as in the first slice.
AD_HOC_STATE = "started"
MAX_DATA_FIELDS = 100


def _check_key(definition_key: str) -> None:
    if not DEFINITION_KEY.match(definition_key):
        raise BadInput(
            "definitionKey must be lower-case letters, digits, '_', '.' or '-' "
            "(at most 100, starting with a letter)",
            field="definitionKey",
        )


async def start_workflow(
    session: AsyncSession,
    *,
    definition_key: str,
    subject_type: str,
    subject_id: uuid.UUID,
    principal: Principal | None = None,
    data: dict[str, Any] | None = None,
    system: bool = False,
    commit: bool = True,
) -> WorkflowInstance:
    """Start the newest version of `definition_key` about the subject.

    `system`: started by a domain event, not a person (no role check).
    """
    _check_key(definition_key)
    if subject_type not in SUBJECT_TYPES:
        raise BadInput(
            f"subjectType must be one of {', '.join(sorted(SUBJECT_TYPES))}", field="subjectType"
        )
    if data is not None and (not isinstance(data, dict) or len(data) > MAX_DATA_FIELDS):
        raise BadInput(f"data is an object of at most {MAX_DATA_FIELDS} fields", field="data")
    row = await published.latest(session, definition_key)
    if row is None:
        instance = WorkflowInstance(
            definition_key=definition_key,
            subject_type=subject_type,
            subject_id=subject_id,
            state=AD_HOC_STATE,
            data=data or {},
            started_by=principal.user_id if principal else None,
        )
        session.add(instance)
        await session.commit()
        return instance

    definition = definitions.from_spec(row.spec)
    if definition.subject != subject_type:
        raise BadInput(
            f"{definition_key!r} is about a {definition.subject}, not a {subject_type}",
            field="subjectType",
        )
    if not system:
        require_role(principal, definition.start_roles, f"starting {definition_key!r}")
    instance = WorkflowInstance(
        id=uuid.uuid4(),
        definition_key=definition_key,
        definition_id=row.id,
        definition_version=row.version,
        subject_type=subject_type,
        subject_id=subject_id,
        state=definition.initial,
        status="running",
        data=data or {},
        started_by=principal.user_id if principal else None,
    )
    session.add(instance)
    await session.flush()  # the rows below refer to it
    session.add(
        Transition(
            instance_id=instance.id,
            name="start",
            trigger="event" if system else "action",
            from_state=None,
            to_state=definition.initial,
            actor_id=instance.started_by,
            changes={key: [None, value] for key, value in (data or {}).items()},
        )
    )
    await session.flush()
    actor = Actor(principal)
    await enter_state(session, instance, definition, actor)
    queue_actions(session, instance, definition.states[definition.initial].on_enter, actor)
    if commit:
        await session.commit()
    return instance


async def definition_of(
    session: AsyncSession, instance: WorkflowInstance
) -> definitions.Definition:
    if instance.definition_id is None:
        raise Conflict("an ad-hoc instance has no transitions", reason="ad_hoc")
    row = await session.get(WorkflowDefinition, instance.definition_id)
    assert row is not None
    return definitions.from_spec(row.spec)


async def act(
    session: AsyncSession,
    principal: Principal | None,
    instance_id: uuid.UUID,
    action: str,
    *,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> WorkflowInstance:
    """Take the action transition `action` from the instance's current state."""
    require_user(principal)
    instance = await get_instance(session, instance_id)
    if expected_version is not None and expected_version != instance.version:
        raise Conflict(
            "the instance changed since the version given", current_version=instance.version
        )
    definition = await definition_of(session, instance)
    candidates = [
        t for t in definition.transitions_from(instance.state) if t.action and t.name == action
    ]
    if not candidates:
        available = available_actions(definition, instance)
        raise BadInput(
            f"{action!r} is not an action from {instance.state!r}"
            + (f"; available: {', '.join(available)}" if available else ""),
            field="action",
        )
    await apply(
        session,
        instance,
        definition,
        candidates[0],
        actor=Actor(principal),
        comment=comment,
        data=data,
    )
    await _commit(session)
    return instance


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except StaleDataError:
        await session.rollback()
        raise Conflict("the instance was changed by another transition; reload it") from None


def available_actions(definition: definitions.Definition, instance: WorkflowInstance) -> list[str]:
    if instance.status != "running":
        return []
    return [t.name for t in definition.transitions_from(instance.state) if t.action]


async def cancel(
    session: AsyncSession, principal: Principal | None, instance_id: uuid.UUID, comment: str | None
) -> WorkflowInstance:
    """Stop a running instance: its tasks and timers are cancelled with it."""
    caller = require_user(principal)
    instance = await get_instance(session, instance_id)
    if instance.started_by != caller.user_id and not is_admin(caller):
        raise Forbidden("only who started an instance, or an admin, may cancel it")
    if instance.status != "running":
        raise Conflict(
            f"the instance is already {instance.status}", instance_status=instance.status
        )
    source = instance.state
    instance.status = "cancelled"
    session.add(
        Transition(
            instance_id=instance.id,
            name="cancel",
            trigger="cancel",
            from_state=source,
            to_state=source,
            actor_id=caller.user_id,
            comment=comment,
            changes={"status": ["running", "cancelled"]},
        )
    )
    await flush_instance(session)
    await leave_state(session, instance)
    await _commit(session)
    return instance


async def retry_action(
    session: AsyncSession, principal: Principal | None, action_run_id: uuid.UUID
) -> ActionRun:
    """An admin queues a failed API request again; the scheduler runs it."""
    require_admin(principal)
    run = await session.get(ActionRun, action_run_id)
    if run is None:
        raise NotFound("no such action")
    if run.status != "failed":
        raise Conflict(f"only a failed action is retried; this one is {run.status}")
    run.status = "pending"
    run.error = None
    await session.commit()
    return run


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


async def _rows_of_instances(
    session: AsyncSession, model: Any, instance_ids: Sequence[uuid.UUID]
) -> list[list[Any]]:
    """One batched query for a one-to-many child of instances, oldest first."""
    rows = (
        await session.scalars(
            select(model)
            .where(model.instance_id.in_(set(instance_ids)))
            .order_by(model.created_at, model.id)
        )
    ).all()
    return grouped(instance_ids, rows, key=lambda row: row.instance_id)


async def transitions_of_instances(
    session: AsyncSession, instance_ids: Sequence[uuid.UUID]
) -> list[list[Transition]]:
    return await _rows_of_instances(session, Transition, instance_ids)


async def action_runs_of_instances(
    session: AsyncSession, instance_ids: Sequence[uuid.UUID]
) -> list[list[ActionRun]]:
    return await _rows_of_instances(session, ActionRun, instance_ids)


async def tasks_of_instances(
    session: AsyncSession, instance_ids: Sequence[uuid.UUID]
) -> list[list[Task]]:
    return await _rows_of_instances(session, Task, instance_ids)


async def list_instances(
    session: AsyncSession,
    *,
    first: int,
    after: str | None,
    definition_key: str | None = None,
    status: str | None = None,
) -> Page[WorkflowInstance]:
    stmt = select(WorkflowInstance)
    if definition_key:
        stmt = stmt.where(WorkflowInstance.definition_key == definition_key)
    if status:
        stmt = stmt.where(WorkflowInstance.status == status)
    return await keyset_page(session, stmt, WorkflowInstance, first=first, after=after)
