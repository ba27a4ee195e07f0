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
import redis.asyncio as aioredis
from conftest import sign_up
from integration.conftest import execute

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
