"""Firing durable timers, exactly once, whatever the number of schedulers.

A scheduler claims one due timer at a time with SELECT ... FOR UPDATE SKIP LOCKED, applies
its effect (a transition, a task's escalation) and marks it fired in the same transaction.
Another scheduler skips the locked row, and once the transaction commits the row is no
longer due; if the scheduler dies before the commit, nothing happened and the timer is
still due for the next one to claim.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.database import utcnow
from subgraphs.common.errors import HubError
from subgraphs.workflow.models import OutboxEvent, Task, Timer, WorkflowInstance
from subgraphs.workflow.service.engine import Actor, apply, flush_instance
from subgraphs.workflow.service.instances import definition_of


async def fire_next(session: AsyncSession) -> Timer | None:
    """Fire the most overdue timer no other scheduler holds; None when none is due.

    The caller commits. A timer whose effect fails (a guard, a conflict) is still marked
    fired, with the reason on `error`: it must not fire forever.
    """
    # The timer and its instance are locked together, skipping both when either is held.
    # Locking the instance after the timer deadlocked: scheduler A holds timer 1 and its
    # instance and cancels the instance's other timers as it leaves the state, while
    # scheduler B holds timer 2 of the same instance and waits for the instance.
    claimed = (
        await session.execute(
            select(Timer, WorkflowInstance)
            .join(WorkflowInstance, WorkflowInstance.id == Timer.instance_id)
            .where(
                Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.fire_at <= utcnow()
            )
            .order_by(Timer.fire_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if claimed is None:
        return None
    timer, instance = claimed
    if instance.status == "running" and instance.state == timer.state:
        try:
            async with session.begin_nested():
                if timer.kind == "transition":
                    await _transition(session, instance, timer)
                else:
                    await _escalate(session, instance, timer)
        except HubError as error:
            timer.error = error.message
    timer.fired_at = utcnow()
    return timer


async def _transition(session: AsyncSession, instance: WorkflowInstance, timer: Timer) -> None:
    definition = await definition_of(session, instance)
    transition = definition.transition(timer.transition or "")
    if transition is not None:
        await apply(session, instance, definition, transition, actor=Actor(), trigger="timer")


async def _escalate(session: AsyncSession, instance: WorkflowInstance, timer: Timer) -> None:
    task = await session.get(Task, timer.task_id) if timer.task_id else None
    if task is None or task.status != "open":
        return
    definition = await definition_of(session, instance)
    spec = next((t for t in definition.states[task.state].tasks if t.name == task.name), None)
    if spec is None or not spec.escalate_to:
        return
    previous = task.assignee_id
    task.role = spec.escalate_to
    task.assignee_id = None
    task.escalated_at = utcnow()
    session.add(
        OutboxEvent(
            type="workflow.task_escalated",
            payload={
                "task_id": str(task.id),
                "instance_id": str(instance.id),
                "title": task.title,
                "role": spec.escalate_to,
                "previous_assignee_id": str(previous) if previous else None,
                "recipient_ids": [str(previous)] if previous else [],
                "due_at": task.due_at.isoformat() if task.due_at else None,
            },
        )
    )
    await flush_instance(session)


async def fire_due(session_factory, limit: int = 100) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    """Fire due timers one transaction each; the ids of the instances they touched."""
    touched: list[uuid.UUID] = []
    for _ in range(limit):
        async with session_factory() as session:
            timer = await fire_next(session)
            if timer is None:
                break
            await session.commit()
            touched.append(timer.instance_id)
    return touched
