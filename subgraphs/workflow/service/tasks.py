"""Human tasks: the inbox, claim, complete (approve/reject/...), delegate."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.database import utcnow
from subgraphs.common.dataloaders import ordered
from subgraphs.common.errors import BadInput, Conflict, Forbidden, NotFound
from subgraphs.common.pagination import Page, PageKey, keyset_page, pages_per_parent
from subgraphs.workflow.models import Task, WorkflowInstance
from subgraphs.workflow.service.access import is_admin, roles_of
from subgraphs.workflow.service.engine import Actor, apply
from subgraphs.workflow.service.instances import _commit, definition_of


def _visible_to(principal: Principal):  # type: ignore[no-untyped-def]
    """Tasks assigned to the caller, or to nobody yet and claimable through their roles."""
    return or_(
        Task.assignee_id == principal.user_id,
        and_(Task.assignee_id.is_(None), Task.role.in_(sorted(roles_of(principal)))),
    )


async def inbox(
    session: AsyncSession,
    principal: Principal | None,
    *,
    first: int,
    after: str | None,
    status: str | None = "open",
) -> Page[Task]:
    caller = require_user(principal)
    stmt = select(Task).where(_visible_to(caller))
    if status:
        stmt = stmt.where(Task.status == status)
    return await keyset_page(session, stmt, Task, first=first, after=after)


async def tasks_of_users(
    session: AsyncSession, keys: Sequence[PageKey], *, principal: Principal | None
) -> list[Page[Task]]:
    """`User.tasks`: each user's assigned tasks; only the user (or an admin) sees them."""
    allowed = [
        k for k in keys if principal and (k.parent_id == principal.user_id or is_admin(principal))
    ]
    pages = {}
    if allowed:
        found = await pages_per_parent(session, select(Task), Task, Task.assignee_id, allowed)
        pages = dict(zip(allowed, found, strict=True))
    return [pages.get(k, Page([], False, None)) for k in keys]


async def tasks_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Task | None]:
    rows = (await session.scalars(select(Task).where(Task.id.in_(set(ids))))).all()
    return ordered(ids, rows, key=lambda row: row.id)


async def _task_for(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, lock: bool = True
) -> Task:
    stmt = select(Task).where(Task.id == task_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    task = await session.scalar(stmt)
    visible = task is not None and (
        task.assignee_id == principal.user_id
        or (task.assignee_id is None and task.role in roles_of(principal))
        or is_admin(principal)
    )
    if task is None or not visible:
        raise NotFound("no such task, or not one of yours")
    if task.status != "open":
        raise Conflict(f"the task is {task.status}", task_status=task.status)
    return task


async def claim(session: AsyncSession, principal: Principal | None, task_id: uuid.UUID) -> Task:
    caller = require_user(principal)
    task = await _task_for(session, caller, task_id)
    if task.assignee_id == caller.user_id:
        return task
    if task.assignee_id is not None:
        raise Conflict("the task is already claimed", reason="claimed")
    task.assignee_id = caller.user_id
    await session.commit()
    return task


async def delegate(
    session: AsyncSession,
    principal: Principal | None,
    task_id: uuid.UUID,
    to_user_id: uuid.UUID,
    comment: str | None = None,
) -> Task:
    caller = require_user(principal)
    task = await _task_for(session, caller, task_id)
    if task.assignee_id != caller.user_id and not is_admin(caller):
        raise Forbidden("claim the task before delegating it")
    task.assignee_id = to_user_id
    task.comment = comment
    await session.commit()
    return task


async def complete(
    session: AsyncSession,
    principal: Principal | None,
    task_id: uuid.UUID,
    outcome: str,
    *,
    comment: str | None = None,
    data: dict | None = None,
) -> Task:
    """Complete the task with `outcome` (approve, reject, ...): the instance takes that action."""
    caller = require_user(principal)
    # Instance before task, the order the scheduler locks them in: the other order deadlocks
    # against a timer firing on the same instance.
    unlocked = await _task_for(session, caller, task_id, lock=False)
    instance = await session.get(WorkflowInstance, unlocked.instance_id, with_for_update=True)
    assert instance is not None
    task = await _task_for(session, caller, task_id)
    if outcome not in task.outcomes:
        raise BadInput(f"outcome must be one of {', '.join(task.outcomes)}", field="outcome")
    definition = await definition_of(session, instance)
    transition = definition.transition(outcome)
    assert transition is not None  # checked when the definition was published
    # Closed first: leaving the state cancels the still-open tasks, not this one.
    task.status = "completed"
    task.outcome = outcome
    task.comment = comment
    task.completed_by = caller.user_id
    task.completed_at = utcnow()
    if task.assignee_id is None:
        task.assignee_id = caller.user_id
    await session.flush()
    await apply(
        session, instance, definition, transition, actor=Actor(caller), comment=comment, data=data
    )
    await _commit(session)
    return task


async def open_tasks_for(
    session: AsyncSession, principal: Principal, instance_id: uuid.UUID
) -> list[Task]:
    """The instance's open tasks the caller may work on (for the taskAssigned subscription)."""
    rows = await session.scalars(
        select(Task).where(
            Task.instance_id == instance_id, Task.status == "open", _visible_to(principal)
        )
    )
    return list(rows.all())
