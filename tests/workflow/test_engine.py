"""Definitions, versions, transitions, tasks and timers, through GraphQL and the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from conftest import graphql, sign_up
from sqlalchemy import func, select, update
from workflow.conftest import act, fire_timers_until, instance_of, publish, start, unique_key

from subgraphs.common.database import utcnow
from subgraphs.workflow.models import OutboxEvent, Timer, Transition
from subgraphs.workflow.service import timers


def review(key: str, *, extra_state: str = "", expire_after: str = "P9D") -> str:
    """A review workflow; it expires after `expire_after` (the session stack's scheduler
    shares this database, so a short expiry would fire in the middle of other tests)."""
    return f"""
key: {key}
name: Review
initial: submitted
states:
  submitted:
    tasks:
      - name: review
        title: Review {{title}}
        assignee: {{role: reviewer}}
        outcomes: [approve, reject]
        due: P1D
        escalate_to: admin
  approved: {{final: true}}
  rejected: {{final: true}}{extra_state}
transitions:
  - {{name: approve, from: submitted, to: approved, action: true, roles: [reviewer],
      accepts: [score], when: [{{field: score, op: ge, value: 5}}]}}
  - {{name: reject, from: submitted, to: rejected, action: true, roles: [reviewer]}}
  - {{name: expire, from: submitted, to: rejected, after: {expire_after}}}
"""


async def test_invalid_definitions_are_refused_with_the_line_and_key(apps, clients, admin) -> None:
    source = (
        review(unique_key())
        .replace("due: P1D", "due: tomorrow")
        .replace("to: approved", "to: approvd")
    )
    refused = await publish(clients, admin, source)
    assert refused["__typename"] == "DefinitionRejected"
    problems = {p["path"]: p for p in refused["problems"]}
    assert problems["states.submitted.tasks[0].due"]["line"] == 12
    assert "ISO 8601" in problems["states.submitted.tasks[0].due"]["message"]
    assert refused["message"].startswith("invalid definition: line 12")

    fixed = review(unique_key()).replace("to: approved", "to: approvd")
    refused = await publish(clients, admin, fixed)
    assert refused["problems"] == [
        {"line": 17, "path": "transitions[0].to", "message": "'approvd' is not one of the states"}
    ]
    broken = await publish(clients, admin, "key: [unclosed\n")
    assert broken["problems"][0]["line"] == 2

    rest = await clients["workflow"].post(
        "/api/v1/workflows", json={"source": "key: x\n"}, headers=admin.headers
    )
    assert rest.status_code == 422
    assert rest.headers["content-type"] == "application/problem+json"
    assert rest.json()["problems"][0]["path"] == "name"


async def test_only_admins_publish(clients, apps) -> None:
    someone = await sign_up(clients["identity"])
    result = await publish(clients, someone, review(unique_key()))
    assert result["__typename"] == "WorkflowForbidden"


async def test_running_instances_keep_their_version(apps, clients, admin) -> None:
    key = unique_key()
    reviewer = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    assert (await publish(clients, admin, review(key)))["version"] == 1
    first = await start(clients, admin, key, data={"title": "RC"})
    assert first["definitionVersion"] == 1

    # Version 2 sends approvals to a new state first.
    v2 = review(key, extra_state="\n  checked: {}").replace(
        "to: approved, action", "to: checked, action"
    )
    assert (await publish(clients, admin, v2))["version"] == 2
    second = await start(clients, admin, key, data={"title": "RC"})
    assert second["definitionVersion"] == 2

    done = await act(clients, reviewer, first["id"], "approve", data={"score": 7})
    assert (done["state"], done["status"]) == ("approved", "completed")
    moved = await act(clients, reviewer, second["id"], "approve", data={"score": 7})
    assert (moved["state"], moved["status"]) == ("checked", "running")


async def test_guards_on_roles_and_data(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    instance = (await start(clients, admin, key))["id"]
    outsider = await sign_up(clients["identity"])
    refused = await act(clients, outsider, instance, "approve", data={"score": 9})
    assert refused["code"] == "FORBIDDEN"
    reviewer = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    low = await act(clients, reviewer, instance, "approve", data={"score": 2})
    assert (low["__typename"], low["code"]) == ("WorkflowInputError", "BAD_USER_INPUT")
    unknown = await act(clients, reviewer, instance, "publish")
    assert "available: approve, reject" in unknown["message"]
    stray = await act(clients, reviewer, instance, "approve", data={"owner": "me"})
    assert "does not accept owner" in stray["message"]

    done = await act(clients, reviewer, instance, "approve", data={"score": 5}, comment="fine")
    assert done["state"] == "approved"
    after = await instance_of(clients, admin, instance)
    step = after["transitions"][-1]
    assert step["name"] == "approve" and step["trigger"] == "action"
    assert step["actorId"] == reviewer.id and step["comment"] == "fine"
    assert step["changes"] == {"score": [None, 5]}
    assert after["availableActions"] == []
    assert [t["status"] for t in after["tasks"]] == ["cancelled"]


async def test_two_concurrent_transitions_give_one_winner(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    reviewer = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    for _ in range(5):
        instance = (await start(clients, admin, key))["id"]
        results = await asyncio.gather(
            act(clients, reviewer, instance, "approve", data={"score": 9}),
            act(clients, reviewer, instance, "reject"),
        )
        kinds = sorted(r["__typename"] for r in results)
        assert kinds == ["WorkflowConflict", "WorkflowInstance"], results
        state = await instance_of(clients, admin, instance)
        winner = next(r for r in results if r["__typename"] == "WorkflowInstance")
        assert state["state"] == winner["state"] and state["version"] == 2
        taken = {"approved": "approve", "rejected": "reject"}[winner["state"]]
        assert [t["name"] for t in state["transitions"]] == ["start", taken]


async def test_a_stale_expected_version_is_a_conflict(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    reviewer = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    instance = await start(clients, admin, key)
    stale = await act(clients, reviewer, instance["id"], "reject", expectedVersion=7)
    assert stale["__typename"] == "WorkflowConflict" and stale["currentVersion"] == 1


async def test_tasks_inbox_claim_delegate_complete(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    instance = (await start(clients, admin, key, data={"title": "Tender"}))["id"]
    ann = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    bob = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    inbox = await clients["workflow"].get("/api/v1/tasks", headers=ann.headers)
    task = next(t for t in inbox.json()["items"] if t["instance_id"] == instance)
    assert task["title"] == "Review Tender" and task["role"] == "reviewer"

    claimed = await clients["workflow"].post(
        f"/api/v1/tasks/{task['id']}/claim", headers=ann.headers
    )
    assert claimed.json()["assignee_id"] == ann.id
    again = await clients["workflow"].post(f"/api/v1/tasks/{task['id']}/claim", headers=bob.headers)
    assert again.status_code == 404  # no longer offered to bob
    delegated = await clients["workflow"].post(
        f"/api/v1/tasks/{task['id']}/delegate", json={"user_id": bob.id}, headers=ann.headers
    )
    assert delegated.json()["assignee_id"] == bob.id

    mine = await graphql(
        clients["workflow"],
        """query($id: ID!) { _entities(representations: [{__typename: "User", id: $id}]) {
           ... on User { tasks { nodes { id subject { __typename ... on Document { id } } } } }
        } }""",
        {"id": bob.id},
        bob.headers,
    )
    assert mine["data"]["_entities"][0]["tasks"]["nodes"][0]["id"] == task["id"]
    bad = await clients["workflow"].post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "maybe"}, headers=bob.headers
    )
    assert bad.status_code == 422 and bad.json()["code"] == "BAD_USER_INPUT"
    done = await clients["workflow"].post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "reject", "comment": "incomplete file"},
        headers=bob.headers,
    )
    assert done.json()["status"] == "completed"
    state = await instance_of(clients, admin, instance)
    assert state["state"] == "rejected"
    assert state["transitions"][-1]["comment"] == "incomplete file"


async def test_each_timer_fires_once_with_two_schedulers(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key, expire_after="PT1S"))
    started = [(await start(clients, admin, key))["id"] for _ in range(12)]
    sessions = apps["workflow"].state.sessions
    async with sessions() as session:
        # Every timer of these instances is due now: the expiry and the task's escalation.
        await session.execute(
            update(Timer).where(Timer.instance_id.in_(started)).values(fire_at=utcnow())
        )
        await session.commit()
    # Two schedulers at once (the session stack's scheduler process may join in: same
    # database). Firing twice would show as a second transition or a second escalation.
    await asyncio.gather(timers.fire_due(sessions), timers.fire_due(sessions))
    # A timer the stack's scheduler claimed (and our two skipped) may still be in flight.
    for _ in range(100):
        async with sessions() as session:
            pending = await session.scalar(
                select(func.count()).where(Timer.instance_id.in_(started), Timer.fired_at.is_(None))
            )
        if not pending:
            break
        await asyncio.sleep(0.1)
    async with sessions() as session:
        expired = await session.scalar(
            select(func.count()).where(
                Transition.instance_id.in_(started), Transition.name == "expire"
            )
        )
        assert expired == 12
        escalations = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "workflow.task_escalated")
            )
        ).all()
        assert sum(e.payload["instance_id"] in started for e in escalations) == 12
        left = await session.scalar(
            select(func.count()).where(Timer.instance_id.in_(started), Timer.fired_at.is_(None))
        )
        assert left == 0
    state = await instance_of(clients, admin, started[0])
    assert state["state"] == "rejected"
    assert state["transitions"][-1]["trigger"] == "timer"


async def test_an_overdue_task_escalates(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    reviewer = await sign_up(clients["identity"], roles=("reviewer",), apps=apps)
    instance = (await start(clients, admin, key))["id"]
    task = (await instance_of(clients, admin, instance))["tasks"][0]
    await clients["workflow"].post(f"/api/v1/tasks/{task['id']}/claim", headers=reviewer.headers)
    sessions = apps["workflow"].state.sessions
    async with sessions() as session:
        await session.execute(
            update(Timer)
            .where(Timer.instance_id == instance, Timer.kind == "escalation")
            .values(fire_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    async def escalated_task() -> dict | None:
        task = (await instance_of(clients, admin, instance))["tasks"][0]
        return task if task["escalatedAt"] is not None else None

    escalated = await fire_timers_until(apps, escalated_task)
    assert escalated["role"] == "admin" and escalated["assigneeId"] is None
    async with sessions() as session:
        events = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "workflow.task_escalated")
            )
        ).all()
    assert any(e.payload["task_id"] == task["id"] for e in events)


async def test_cancel_stops_tasks_and_timers(apps, clients, admin) -> None:
    key = unique_key()
    await publish(clients, admin, review(key))
    instance = (await start(clients, admin, key))["id"]
    cancelled = await graphql(
        clients["workflow"],
        'mutation($id: ID!) { cancelWorkflow(id: $id, comment: "dup") {'
        " ... on WorkflowInstance { status } ... on WorkflowError { code } } }",
        {"id": instance},
        admin.headers,
    )
    assert cancelled["data"]["cancelWorkflow"] == {"status": "cancelled"}
    async with apps["workflow"].state.sessions() as session:
        pending = await session.scalar(
            select(func.count()).where(
                Timer.instance_id == instance,
                Timer.cancelled_at.is_(None),
                Timer.fired_at.is_(None),
            )
        )
    assert pending == 0
    again = await clients["workflow"].post(
        f"/api/v1/workflows/instances/{instance}/cancel", json={}, headers=admin.headers
    )
    assert again.status_code == 409
