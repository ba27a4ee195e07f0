"""Helpers for workflow's tests: publishing definitions, acting, firing timers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from conftest import Account, graphql, sign_up

from subgraphs.workflow.service import timers

PUBLISH = """mutation($s: String!) { publishWorkflowDefinition(source: $s) {
  __typename ... on WorkflowDefinition { id key version }
  ... on DefinitionRejected { message problems { line path message } } } }"""
START = """mutation($i: StartWorkflowInput!) { startWorkflow(input: $i) {
  id state status version definitionVersion } }"""
ACT = """mutation($i: WorkflowActionInput!) { performWorkflowAction(input: $i) {
  __typename ... on WorkflowInstance { id state status version data }
  ... on WorkflowError { message code } ... on WorkflowConflict { currentVersion } } }"""
INSTANCE = """query($id: ID!) { workflowInstance(id: $id) {
  state status version definitionVersion availableActions data
  transitions { name trigger fromState toState actorId comment changes }
  tasks { id name status role assigneeId outcomes title escalatedAt } } }"""


def unique_key(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def admin(apps, clients) -> Account:
    return await sign_up(clients["identity"], roles=("admin",), apps=apps)


async def publish(clients, admin: Account, source: str) -> dict[str, Any]:
    result = await graphql(clients["workflow"], PUBLISH, {"s": source}, admin.headers)
    return result["data"]["publishWorkflowDefinition"]


async def start(
    clients, account: Account, key: str, *, data: dict | None = None, document: str | None = None
) -> dict[str, Any]:
    variables = {"definitionKey": key, "documentId": document or str(uuid.uuid4()), "data": data}
    result = await graphql(clients["workflow"], START, {"i": variables}, account.headers)
    assert "errors" not in result, result
    return result["data"]["startWorkflow"]


async def act(
    clients, account: Account, instance: str, action: str, **fields: Any
) -> dict[str, Any]:
    variables = {"instanceId": instance, "action": action, **fields}
    result = await graphql(clients["workflow"], ACT, {"i": variables}, account.headers)
    assert "errors" not in result, result
    return result["data"]["performWorkflowAction"]


async def instance_of(clients, account: Account, instance: str) -> dict[str, Any]:
    result = await graphql(clients["workflow"], INSTANCE, {"id": instance}, account.headers)
    return result["data"]["workflowInstance"]


T = TypeVar("T")


async def fire_timers_until(apps, seen: Callable[[], Awaitable[T | None]]) -> T:
    """Fire due timers until `seen()` gives something. Once the run's stack is up (the
    router tests' `stack` fixture), its workflow scheduler fires the same timers: it may
    hold one (FOR UPDATE SKIP LOCKED) just as this call looks, and commit a moment later."""
    for _ in range(120):  # a timer due a few seconds from now fires within these 12 s
        await timers.fire_due(apps["workflow"].state.sessions)
        result = await seen()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("the due timer never fired")
