"""The built-in care pathway, end to end: referral, triage, consultation, follow-up; the
patient reminded at each step, a late step escalated to the nurses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from conftest import graphql, sign_up
from sqlalchemy import select, update
from workflow.conftest import fire_timers_until, instance_of

from subgraphs.common.database import utcnow
from subgraphs.workflow.models import OutboxEvent, Timer
from subgraphs.workflow.service import timers

KEY = "care.pathway"
START = """mutation($i: StartWorkflowInput!) { startWorkflow(input: $i) { id state } }"""
COMPLETE = """mutation($i: CompleteTaskInput!) { completeTask(input: $i) {
  __typename ... on Task { status outcome } ... on WorkflowError { code message } } }"""
CLAIM = """mutation($id: ID!) { claimTask(id: $id) {
  __typename ... on Task { assigneeId } ... on WorkflowError { code } } }"""


async def events_about(apps, instance: str, type: str) -> list[dict]:
    async with apps["workflow"].state.sessions() as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == type).order_by(OutboxEvent.created_at)
        )
        return [r.payload for r in rows if r.payload.get("instance_id") == instance]


async def open_task(clients, account, instance: str, name: str) -> dict:
    current = await instance_of(clients, account, instance)
    return next(t for t in current["tasks"] if t["name"] == name and t["status"] == "open")


async def complete(clients, account, task: str, outcome: str, **data) -> dict:
    variables = {"taskId": task, "outcome": outcome, "data": data or None}
    result = await graphql(clients["workflow"], COMPLETE, {"i": variables}, account.headers)
    return result["data"]["completeTask"]


async def test_a_patient_goes_from_referral_to_discharge(apps, clients, admin) -> None:
    identity = clients["identity"]
    doctor = await sign_up(identity, roles=("doctor",), apps=apps)
    nurse, other_nurse = [await sign_up(identity, roles=("nurse",), apps=apps) for _ in range(2)]
    patient = await sign_up(identity, display_name="Patient")

    refused = await graphql(
        clients["workflow"],
        START,
        {"i": {"definitionKey": KEY, "userId": patient.id, "data": {"patient_id": patient.id}}},
        patient.headers,
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    started = await graphql(
        clients["workflow"],
        START,
        {"i": {"definitionKey": KEY, "userId": patient.id, "data": {"patient_id": patient.id}}},
        doctor.headers,
    )
    instance = started["data"]["startWorkflow"]["id"]
    assert started["data"]["startWorkflow"]["state"] == "referral"

    # Referral: a nurse takes it, lets it run late; it goes back to every nurse, flagged.
    referral = await open_task(clients, nurse, instance, "accept_referral")
    assert referral["role"] == "nurse"
    claimed = await graphql(clients["workflow"], CLAIM, {"id": referral["id"]}, nurse.headers)
    assert claimed["data"]["claimTask"]["assigneeId"] == nurse.id
    async with apps["workflow"].state.sessions() as session:
        late = await session.execute(
            update(Timer)
            .where(Timer.task_id == uuid.UUID(referral["id"]), Timer.kind == "escalation")
            .values(fire_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
        assert late.rowcount == 1

    async def escalated_referral() -> dict | None:
        task = await open_task(clients, other_nurse, instance, "accept_referral")
        return task if task["escalatedAt"] is not None else None

    escalated = await fire_timers_until(apps, escalated_referral)
    assert (escalated["assigneeId"], escalated["role"]) == (None, "nurse")
    [alert] = await events_about(apps, instance, "workflow.task_escalated")
    assert alert["previous_assignee_id"] == nurse.id and alert["role"] == "nurse"

    # Triage, then the consultation booked a moment from now: the patient is reminded.
    assert (await complete(clients, other_nurse, referral["id"], "triage"))["status"] == "completed"
    triage = await open_task(clients, other_nurse, instance, "triage")
    no_date = await complete(clients, other_nurse, triage["id"], "schedule")
    assert no_date["code"] == "BAD_USER_INPUT"  # appointment_at is required
    appointment = (utcnow() + timedelta(seconds=1)).isoformat()
    scheduled = await complete(
        clients, other_nurse, triage["id"], "schedule", appointment_at=appointment
    )
    assert scheduled["status"] == "completed"
    for _ in range(50):
        await timers.fire_due(apps["workflow"].state.sessions)
        current = await instance_of(clients, doctor, instance)
        if "remind_appointment" in [t["name"] for t in current["transitions"]]:
            break
        await asyncio.sleep(0.2)
    assert current["state"] == "consultation"

    # The doctor sees the patient and plans a follow-up, which a nurse closes.
    consult = await open_task(clients, doctor, instance, "consult")
    assert consult["role"] == "doctor"
    nurse_tries = await complete(clients, nurse, consult["id"], "follow_up")
    assert nurse_tries["code"] == "NOT_FOUND"  # not offered to nurses
    follow_up_at = (utcnow() + timedelta(days=30)).date().isoformat()
    planned = await complete(clients, doctor, consult["id"], "follow_up", follow_up_at=follow_up_at)
    assert planned["status"] == "completed"
    follow_up = await open_task(clients, nurse, instance, "follow_up")
    assert (await complete(clients, nurse, follow_up["id"], "discharge"))["status"] == "completed"

    final = await instance_of(clients, doctor, instance)
    assert (final["state"], final["status"]) == ("discharged", "completed")
    assert [t["name"] for t in final["transitions"]] == [
        "start",
        "triage",
        "schedule",
        "remind_appointment",
        "follow_up",
        "discharge",
    ]
    to_patient = [
        e["title"]
        for e in await events_about(apps, instance, "workflow.notification_requested")
        if e["recipient_ids"] == [patient.id]
    ]
    assert to_patient[:2] == ["Your referral was received", "Your consultation"]
    assert "Reminder" in to_patient and to_patient[-1] == "Follow-up"
