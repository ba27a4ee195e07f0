"""The engine: moving an instance from state to state, atomically.

Every transition — an actor's action, a domain event, a timer — goes through `apply`:
it checks the guards, changes the instance (state, data, version) and records the
transition, closes the tasks and timers of the state left, opens those of the state
entered and queues the actions (outbox events, API requests), all in the caller's
transaction. The instance row carries a version (SQLAlchemy's version_id_col): of two
transactions that move one instance, the second one's UPDATE matches no row and it fails
with CONFLICT, so an instance is never half in one state and half in another.
"""

from __future__ import annotations

import string
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from subgraphs.common.auth import Principal
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, Conflict
from subgraphs.workflow import definitions
from subgraphs.workflow.definitions import Action, Condition, Definition, TransitionSpec
from subgraphs.workflow.models import (
    ActionRun,
    OutboxEvent,
    Task,
    Timer,
    Transition,
    WorkflowInstance,
)
from subgraphs.workflow.service.access import require_role

NOTIFICATION_EVENT = "workflow.notification_requested"


class Actor:
    """Who causes a transition: a person (with their roles) or the system (timer, event)."""

    def __init__(self, principal: Principal | None = None) -> None:
        self.principal = principal

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id if self.principal else None


def check_guards(
    transition: TransitionSpec, instance: WorkflowInstance, data: dict[str, Any], actor: Actor
) -> None:
    if transition.trigger == "action":  # timers and events act for the system
        require_role(actor.principal, transition.roles, f"{transition.name!r}")
    for condition in transition.when:
        if not holds(condition, data):
            raise BadInput(
                f"{transition.name!r} needs {condition.field} {condition.op} {condition.value!r}"
                if condition.op != "present"
                else f"{transition.name!r} needs {condition.field}",
                field=condition.field,
                reason="guard",
            )


def holds(condition: Condition, data: dict[str, Any]) -> bool:
    value = data.get(condition.field)
    if condition.op == "present":
        return value not in (None, "", [])
    try:
        match condition.op:
            case "eq":
                return bool(value == condition.value)
            case "ne":
                return bool(value != condition.value)
            case "gt":
                return bool(value is not None and value > condition.value)
            case "ge":
                return bool(value is not None and value >= condition.value)
            case "lt":
                return bool(value is not None and value < condition.value)
            case "le":
                return bool(value is not None and value <= condition.value)
            case "in":
                return value in (condition.value or [])
    except TypeError:  # comparing a number with text: the guard does not hold
        return False
    return False


async def apply(
    session: AsyncSession,
    instance: WorkflowInstance,
    definition: Definition,
    transition: TransitionSpec,
    *,
    actor: Actor,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    trigger: str | None = None,
) -> Transition:
    """Take `transition` (guards checked here); the caller commits."""
    if instance.status != "running":
        raise Conflict(f"the instance is {instance.status}", instance_status=instance.status)
    if instance.state not in transition.from_ and "*" not in transition.from_:
        raise Conflict(
            f"{transition.name!r} cannot be taken from {instance.state!r}", state=instance.state
        )
    unknown = set(data or {}) - set(transition.accepts)
    if unknown:
        raise BadInput(
            f"{transition.name!r} does not accept {', '.join(sorted(unknown))}"
            + (f" (it accepts {', '.join(transition.accepts)})" if transition.accepts else ""),
            field="data",
        )
    new_data = {**instance.data, **(data or {})}
    check_guards(transition, instance, new_data, actor)

    before = dict(instance.data)
    source = instance.state
    queued: list[Action] = list(transition.actions)
    entering = transition.to != source
    if entering:
        queued += definition.states[transition.to].on_enter
    new_data = _run_set_actions(queued, new_data)

    instance.state = transition.to
    instance.data = new_data
    if definition.states[transition.to].final:
        instance.status = "completed"
    record = Transition(
        instance_id=instance.id,
        name=transition.name,
        trigger=trigger or transition.trigger,
        from_state=source,
        to_state=transition.to,
        actor_id=actor.user_id,
        comment=comment,
        changes=_changes(before, new_data),
    )
    session.add(record)
    await flush_instance(session)
    if entering:
        await leave_state(session, instance)
        if instance.status == "running":
            await enter_state(session, instance, definition, actor)
    queue_actions(session, instance, queued, actor)
    return record


async def flush_instance(session: AsyncSession) -> None:
    """Write the instance now: a concurrent transition fails here with CONFLICT."""
    try:
        await session.flush()
    except StaleDataError:
        await session.rollback()
        raise Conflict("the instance was changed by another transition; reload it") from None


async def leave_state(session: AsyncSession, instance: WorkflowInstance) -> None:
    now = utcnow()
    await session.execute(
        update(Task)
        .where(Task.instance_id == instance.id, Task.status == "open")
        .values(status="cancelled", updated_at=now)
    )
    await session.execute(
        update(Timer)
        .where(
            Timer.instance_id == instance.id,
            Timer.fired_at.is_(None),
            Timer.cancelled_at.is_(None),
        )
        .values(cancelled_at=now)
    )


async def enter_state(
    session: AsyncSession, instance: WorkflowInstance, definition: Definition, actor: Actor
) -> None:
    """Open the state's tasks and set the timers of the transitions that leave it."""
    now = utcnow()
    state = definition.states[instance.state]
    escalations: list[Timer] = []
    for spec in state.tasks:
        assignee_id, role = _assignee(spec.assignee, instance, actor)
        task = Task(
            id=uuid.uuid4(),
            instance_id=instance.id,
            name=spec.name,
            title=_format(spec.title, instance),
            state=instance.state,
            outcomes=list(spec.outcomes),
            assignee_id=assignee_id,
            role=role,
            status="open",
            due_at=now + definitions.parse_duration(spec.due) if spec.due else None,
        )
        session.add(task)
        if task.due_at is not None and spec.escalate_to:
            escalations.append(
                Timer(
                    instance_id=instance.id,
                    kind="escalation",
                    state=instance.state,
                    task_id=task.id,
                    fire_at=task.due_at,
                )
            )
    await session.flush()  # the tasks, before the timers that refer to them
    session.add_all(escalations)
    for transition in definition.transitions_from(instance.state):
        fire_at = _fire_at(transition, instance, now)
        if fire_at is not None:
            session.add(
                Timer(
                    instance_id=instance.id,
                    kind="transition",
                    state=instance.state,
                    transition=transition.name,
                    fire_at=fire_at,
                )
            )


def _fire_at(
    transition: TransitionSpec, instance: WorkflowInstance, now: datetime
) -> datetime | None:
    if transition.after:
        return now + definitions.parse_duration(transition.after)
    if transition.at:
        name = transition.at.removeprefix("data.")
        value = instance.data.get(name)
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise BadInput(
                f"{name} must be an ISO 8601 date-time (the timer of {transition.name!r})",
                field=name,
            ) from None
        if moment.tzinfo is None:
            raise BadInput(f"{name} must carry a time zone, e.g. Z or +01:00", field=name)
        return moment
    return None


def _assignee(
    spec: Any, instance: WorkflowInstance, actor: Actor
) -> tuple[uuid.UUID | None, str | None]:
    if spec.role:
        return None, spec.role
    ids = _user_ids(spec.user, instance, actor)
    if not ids:
        raise BadInput(f"the task's assignee {spec.user} is not set", field=spec.user)
    return ids[0], None


def _user_ids(reference: str, instance: WorkflowInstance, actor: Actor) -> list[uuid.UUID]:
    if reference == "$starter":
        values: Any = [instance.started_by] if instance.started_by else []
    elif reference == "$actor":
        values = [actor.user_id] if actor.user_id else []
    else:
        value = instance.data.get(reference.removeprefix("data."))
        values = value if isinstance(value, list) else [value] if value else []
    try:
        return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in values]
    except ValueError:
        raise BadInput(f"{reference} must hold user ids", field=reference) from None


def _run_set_actions(actions: list[Action], data: dict[str, Any]) -> dict[str, Any]:
    for action in actions:
        if action.set:
            data = {**data, **action.set}
    return data


def queue_actions(
    session: AsyncSession, instance: WorkflowInstance, actions: list[Action], actor: Actor
) -> None:
    """Outbox events and API requests, stored with the transition (sent once it commits)."""
    about = {
        "instance_id": str(instance.id),
        "definition_key": instance.definition_key,
        "state": instance.state,
        "subject_type": instance.subject_type,
        "subject_id": str(instance.subject_id),
    }
    for action in actions:
        if action.notify:
            recipients = {
                str(user)
                for reference in action.notify.to
                for user in _user_ids(reference, instance, actor)
            }
            if recipients:
                session.add(
                    OutboxEvent(
                        type=NOTIFICATION_EVENT,
                        payload={
                            **about,
                            "recipient_ids": sorted(recipients),
                            "title": _format(action.notify.title, instance),
                            "body": _format(action.notify.body, instance),
                        },
                    )
                )
        elif action.emit:
            session.add(OutboxEvent(type=action.emit.type, payload={**about, **action.emit.data}))
        elif action.request:
            spec = action.request.model_dump()
            spec["path"] = _format(spec["path"], instance)
            session.add(ActionRun(instance_id=instance.id, spec=spec, status="pending"))


class _Leave(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _format(text: str, instance: WorkflowInstance) -> str:
    """`{field}` replaced by the instance's data (and id, state, subject_id); others kept."""
    values = _Leave(
        {
            **{k: v for k, v in instance.data.items() if isinstance(v, str | int | float)},
            "instance_id": str(instance.id),
            "state": instance.state,
            "subject_id": str(instance.subject_id),
        }
    )
    try:
        return string.Formatter().vformat(text, (), values)
    except (ValueError, IndexError, KeyError, AttributeError):
        return text


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
