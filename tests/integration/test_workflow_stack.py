"""Workflow through the real stack: the router, the workflow subgraph, its scheduler process
and the deployment's event stream."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from conftest import sign_up
from integration.conftest import execute, graphql_ws

DEFINITION = """
key: {key}
name: Reminder
initial: waiting
states:
  waiting:
    on_enter:
      - notify: {{to: [$starter], title: "Waiting on {{subject_id}}"}}
  reminded: {{final: true}}
transitions:
  - {{name: remind, from: waiting, to: reminded, after: PT3S}}
"""
PUBLISH = """mutation($s: String!) { publishWorkflowDefinition(source: $s) {
  __typename ... on WorkflowDefinition { version } } }"""
START = """mutation($i: StartWorkflowInput!) { startWorkflow(input: $i) { id state } }"""
INSTANCE = """query($id: ID!) { workflowInstance(id: $id) {
  state transitions { name trigger } } }"""


async def test_a_pending_timer_fires_once_across_a_scheduler_restart(stack, router, apps) -> None:
    async with httpx.AsyncClient(base_url=stack.urls["identity"], timeout=30) as identity:
        admin = await sign_up(identity, roles=("admin",), apps=apps)
    key = f"reminder.{uuid.uuid4().hex[:8]}"
    published = await execute(router, PUBLISH, {"s": DEFINITION.format(key=key)}, admin.headers)
    assert published["publishWorkflowDefinition"]["version"] == 1

    stack.stop_service("workflow-scheduler")
    try:
        document = str(uuid.uuid4())
        started = await execute(
            router, START, {"i": {"definitionKey": key, "documentId": document}}, admin.headers
        )
        instance = started["startWorkflow"]["id"]
        await asyncio.sleep(4)  # due while no scheduler runs
        waiting = await execute(router, INSTANCE, {"id": instance}, admin.headers)
        assert waiting["workflowInstance"]["state"] == "waiting"
    finally:
        stack.restart_service("workflow-scheduler")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = (await execute(router, INSTANCE, {"id": instance}, admin.headers))[
            "workflowInstance"
        ]
        if current["state"] == "reminded":
            break
        await asyncio.sleep(0.3)
    assert current["transitions"] == [
        {"name": "start", "trigger": "action"},
        {"name": "remind", "trigger": "timer"},
    ]

    # The notification left through the outbox onto the deployment's event stream.
    client = aioredis.Redis.from_url(stack.backing.redis_url)
    try:
        stream = stack.env.get("HUB_EVENTS_STREAM") or os.environ["HUB_EVENTS_STREAM"]
        for _ in range(50):
            entries: Any = await client.xrange(stream)
            mine = [
                json.loads(fields[b"data"])
                for _, fields in entries
                if fields[b"type"] == b"workflow.notification_requested"
                and json.loads(fields[b"data"]).get("instance_id") == instance
            ]
            if mine:
                break
            await asyncio.sleep(0.2)
        assert [(m["title"], m["recipient_ids"]) for m in mine] == [
            (f"Waiting on {document}", [admin.id])
        ]
    finally:
        await client.aclose()


# --- an event starts a workflow -------------------------------------------------------------

REVIEW = """
key: {key}
name: Review on upload
subject: Document
initial: submitted
starts_on:
  event: content.document_created
  where: {{document_title: "{title}"}}
  subject_id: document_id
states:
  submitted:
    tasks:
      - name: review
        title: "Review {{document_title}}"
        assignee: {{role: admin}}
        outcomes: [approve]
  approved: {{final: true}}
transitions:
  - {{name: approve, from: submitted, to: approved, action: true}}
"""
WORKFLOWS_OF = """query($id: ID!) { document(id: $id) {
  title workflows { definitionKey state data transitions { name trigger } tasks { title } } } }"""


async def admin_of(stack, apps):
    async with httpx.AsyncClient(base_url=stack.urls["identity"], timeout=30) as identity:
        return await sign_up(identity, roles=("admin",), apps=apps)


async def test_a_created_document_starts_its_review_workflow(stack, router, apps) -> None:
    """content.document_created reaches the scheduler through the event stream; the
    definition waiting for it starts an instance about the document."""
    admin = await admin_of(stack, apps)
    key, title = f"review.{uuid.uuid4().hex[:8]}", f"Tender {uuid.uuid4().hex[:6]}"
    source = REVIEW.format(key=key, title=title)
    published = await execute(router, PUBLISH, {"s": source}, admin.headers)
    assert published["publishWorkflowDefinition"]["version"] == 1

    other = await router.post(
        "/api/v1/documents", json={"title": "Unrelated"}, headers=admin.headers
    )
    created = await router.post("/api/v1/documents", json={"title": title}, headers=admin.headers)
    assert created.status_code == 201, created.text
    document = created.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = (await execute(router, WORKFLOWS_OF, {"id": document}, admin.headers))["document"]
        mine = [w for w in found["workflows"] if w["definitionKey"] == key]
        if mine:
            break
        await asyncio.sleep(0.3)
    assert len(mine) == 1, found
    assert mine[0]["state"] == "submitted"
    assert mine[0]["transitions"] == [{"name": "start", "trigger": "event"}]
    assert mine[0]["data"]["document_title"] == title
    assert mine[0]["tasks"] == [{"title": f"Review {title}"}]
    # The same event type for another title started nothing.
    unrelated = await execute(router, WORKFLOWS_OF, {"id": other.json()["id"]}, admin.headers)
    assert [w for w in unrelated["document"]["workflows"] if w["definitionKey"] == key] == []


# --- subscriptions through the router -------------------------------------------------------

WATCHED = """
key: {key}
name: Watched
initial: open
states:
  open:
    tasks:
      - {{name: handle, title: Handle it, assignee: {{role: {role}}}, outcomes: [close]}}
  closed: {{final: true}}
transitions:
  - {{name: note, from: open, to: open, action: true, accepts: [note]}}
  - {{name: close, from: open, to: closed, action: true}}
"""
ACT = """mutation($i: WorkflowActionInput!) { performWorkflowAction(input: $i) {
  __typename ... on WorkflowInstance { version } } }"""


async def test_instance_updates_and_my_new_tasks_arrive_through_the_router(
    stack, router, apps
) -> None:
    admin = await admin_of(stack, apps)
    role = f"handler{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=stack.urls["identity"], timeout=30) as identity:
        handler = await sign_up(identity, roles=(role,), apps=apps)
        bystander = await sign_up(identity, apps=apps)
    key = f"watched.{uuid.uuid4().hex[:8]}"
    await execute(router, PUBLISH, {"s": WATCHED.format(key=key, role=role)}, admin.headers)
    document = str(uuid.uuid4())
    instance = (
        await execute(
            router, START, {"i": {"definitionKey": key, "documentId": document}}, admin.headers
        )
    )["startWorkflow"]["id"]
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"

    async with graphql_ws(ws_url, admin.access_token) as watcher:
        await watcher.subscribe(
            """subscription($id: ID!) { workflowInstanceUpdated(id: $id) {
                id state version data } }""",
            {"id": instance},
        )
        # The subscription reaches the subgraph asynchronously: act until one is heard.
        for attempt in range(20):
            await execute(
                router,
                ACT,
                {"i": {"instanceId": instance, "action": "note", "data": {"note": attempt}}},
                admin.headers,
            )
            try:
                event = await asyncio.wait_for(watcher.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no update arrived")
    update = event["payload"]["data"]["workflowInstanceUpdated"]
    assert update["id"] == instance and update["state"] == "open"
    assert update["data"]["note"] == attempt and update["version"] >= 2

    async with (
        graphql_ws(ws_url, handler.access_token) as handlers,
        graphql_ws(ws_url, bystander.access_token) as bystanders,
    ):
        query = "subscription { taskAssigned { id title role instance { id definitionKey } } }"
        await handlers.subscribe(query)
        await bystanders.subscribe(query)
        started = []
        for _ in range(20):
            started.append(
                (
                    await execute(
                        router,
                        START,
                        {"i": {"definitionKey": key, "documentId": str(uuid.uuid4())}},
                        admin.headers,
                    )
                )["startWorkflow"]["id"]
            )
            try:
                event = await asyncio.wait_for(handlers.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no task arrived")
        task = event["payload"]["data"]["taskAssigned"]
        assert (task["title"], task["role"]) == ("Handle it", role)
        assert task["instance"]["id"] in started and task["instance"]["definitionKey"] == key
        # Nothing for someone without the role.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bystanders.receive(), timeout=1.5)


# --- suggestions, computed by the workflow worker -------------------------------------------

SUGGESTION = """query($id: ID!) { suggestion(id: $id) { status value confidence modelVersion } }"""
DOCUMENT = """query($id: ID!) { document(id: $id) {
  type tags suggestions { kind status decision } } }"""


async def test_suggestions_are_computed_by_the_worker_and_accepted_through_the_router(
    stack, router, apps
) -> None:
    from content.conftest import organization_with
    from workflow.test_suggestions import ACCEPT, CORPUS, LEARN, REQUEST

    async with httpx.AsyncClient(base_url=stack.urls["identity"], timeout=30) as identity:
        organization, people = await organization_with(apps, {"identity": identity}, clerk="member")
    clerk = people["clerk"]
    labelled = []
    for kind in ("invoice", "purchase_order", "referral_letter", "lab_report"):
        for example in [e for e in CORPUS if e.type == kind][:4]:
            made = await router.post(
                "/api/v1/documents",
                json={
                    "title": kind,
                    "description": example.text,
                    "type": kind,
                    "tags": list(example.tags),
                    "organization_id": str(organization),
                    "visibility": "organization",
                },
                headers=clerk.headers,
            )
            assert made.status_code == 201, made.text
            labelled.append(made.json()["id"])
    learned = await execute(router, LEARN, {"ids": labelled}, clerk.headers)
    assert learned["learnFromDocuments"]["count"] == 16

    text = next(e for e in CORPUS[::-1] if e.type == "purchase_order").text
    made = await router.post(
        "/api/v1/documents",
        json={"title": "Scan", "description": text, "organization_id": str(organization)},
        headers=clerk.headers,
    )
    document = made.json()["id"]
    asked = await execute(
        router,
        REQUEST,
        {"i": {"documentId": document, "kinds": ["CLASSIFICATION", "KEY_FIELDS"]}},
        clerk.headers,
    )
    classification, key_fields = asked["requestDocumentSuggestions"]["suggestions"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = (await execute(router, SUGGESTION, {"id": classification["id"]}, clerk.headers))[
            "suggestion"
        ]
        if current["status"] not in ("QUEUED", "RUNNING"):
            break
        await asyncio.sleep(0.5)
    assert current["status"] == "READY", current
    assert current["value"]["type"] == "purchase_order"
    assert current["modelVersion"].startswith("tfidf-logreg/v")

    accepted = await execute(router, ACCEPT, {"i": {"id": classification["id"]}}, clerk.headers)
    assert accepted["acceptSuggestion"]["status"] == "ACCEPTED"
    # Content's own answer, through the graph: the type is applied, the decision recorded.
    seen = (await execute(router, DOCUMENT, {"id": document}, clerk.headers))["document"]
    assert seen["type"] == "purchase_order"
    kinds = {s["kind"]: s for s in seen["suggestions"]}
    assert kinds["CLASSIFICATION"]["status"] == "ACCEPTED"
    assert kinds["CLASSIFICATION"]["decision"]["type"] == "purchase_order"
    assert kinds["KEY_FIELDS"]["status"] in ("QUEUED", "RUNNING", "READY")
    rest = await router.get(
        f"/api/v1/workflows/suggestions/{key_fields['id']}", headers=clerk.headers
    )
    assert rest.status_code == 200 and rest.json()["kind"] == "key_fields"
