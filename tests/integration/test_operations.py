"""Every client operation in schema/operations/ through the real router, against seeded data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from integration.conftest import execute, graphql_ws
from integration.test_federation import seed

from subgraphs.schema_checks import Operation, load_operations

OPERATIONS = {operation.name: operation for operation in load_operations()}

Seeded = dict[str, str]
Variables = Callable[[httpx.AsyncClient, Seeded], Awaitable[dict[str, Any]]]


async def send_notification(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    return {"input": {"recipientId": seeded["user"], "title": f"Hello #{uuid.uuid4().hex[:6]}"}}


async def notification_of(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    sent = await execute(
        router,
        OPERATIONS["SendNotification"].text,
        await send_notification(router, seeded),
        {"authorization": f"Bearer {seeded['token']}"},
    )
    return {"id": sent["sendNotification"]["id"]}


def from_seed(**variables: Any) -> Variables:
    """Variables built from the seeded ids: from_seed(id="document") -> {"id": <document id>}."""

    async def build(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
        return {name: seeded[key] for name, key in variables.items()}

    return build


async def new_document(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    return {"input": {"title": "Specification"}}


async def new_workflow(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    return {"input": {"definitionKey": "approval", "documentId": seeded["document"]}}


async def workflow_of(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    started = await execute(
        router, OPERATIONS["StartWorkflow"].text, await new_workflow(router, seeded)
    )
    return {"id": started["startWorkflow"]["id"]}


async def new_account(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    return {"input": {"email": email, "password": seeded["password"], "displayName": "New"}}


async def no_variables(router: httpx.AsyncClient, seeded: Seeded) -> dict[str, Any]:
    return {}


# How to call each operation with real data. A new file in schema/operations/ needs an entry.
EXAMPLES: dict[str, Variables] = {
    "DocumentOverview": from_seed(id="document"),
    "Documents": no_variables,
    "UserDocuments": from_seed(userId="user"),
    "CreateDocument": new_document,
    "StartWorkflow": new_workflow,
    "WorkflowInstance": workflow_of,
    "Inbox": from_seed(recipientId="user"),
    "SendNotification": send_notification,
    "MarkNotificationRead": notification_of,
    "NotificationAdded": from_seed(recipientId="user"),
    "Me": no_variables,
    "Register": new_account,
    "Login": from_seed(email="email", password="password"),
}


def test_every_operation_has_an_example() -> None:
    assert set(EXAMPLES) == set(OPERATIONS)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_client_operation_runs_through_the_router(stack, router, name: str) -> None:
    operation = OPERATIONS[name]
    seeded = await seed(router)
    variables = await EXAMPLES[name](router, seeded)
    if operation.kind == "subscription":
        data = await first_event(stack, router, operation, variables, seeded)
    else:
        signed_in = {"authorization": f"Bearer {seeded['token']}"}
        data = await execute(router, operation.text, variables, signed_in)
    # Every root field answered with data: an empty `null` would hide a broken resolver.
    assert data and all(value is not None for value in data.values()), data


async def first_event(
    stack, router, operation: Operation, variables: dict[str, Any], seeded: Seeded
) -> dict[str, Any]:
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, seeded["token"]) as client:
        subscription = await client.subscribe(operation.text, variables)
        # The subscription is live once the subgraph listens; send until an event lands.
        for _ in range(20):
            await execute(
                router,
                OPERATIONS["SendNotification"].text,
                await send_notification(router, seeded),
                {"authorization": f"Bearer {seeded['token']}"},
            )
            try:
                message = await asyncio.wait_for(client.receive(), timeout=1.5)
            except TimeoutError:
                continue
            assert message["id"] == subscription and message["type"] == "next", message
            assert "errors" not in message["payload"], message
            return message["payload"]["data"]
    raise AssertionError("no event arrived")
