"""The real stack — router, four subgraphs, Celery worker — started once for this folder.

It runs on free ports over the run's throwaway databases and Redis namespace (the same
ones the in-process tests use), exactly as `scripts/up` would start it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from conftest import RUN_ID
from devstack import DATA_DIR, Stack, ensure_backing_services
from websockets.asyncio.client import ClientConnection, connect


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    backing = ensure_backing_services(DATA_DIR, log=lambda *_: None)
    log_dir = tmp_path_factory.mktemp("stack-logs")
    stack = Stack.for_tests(
        backing,
        log_dir=log_dir,
        database_prefix=f"hubtest_{RUN_ID}",
        redis_namespace=f"hubtest:{RUN_ID}",
    )
    stack.migrate()
    stack.start()
    try:
        stack.wait_ready(timeout=180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def router(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.urls["router"], timeout=30) as client:
        yield client


async def execute(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


class GraphQLSubscriptions:
    """A graphql-transport-ws client, just enough to speak the protocol in tests."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._next_id = 0

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._next_id += 1
        id = str(self._next_id)
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))
        return id

    async def receive(self) -> dict[str, Any]:
        while True:
            message = json.loads(await self.socket.recv())
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            return message


@asynccontextmanager
async def graphql_ws(url: str) -> AsyncIterator[GraphQLSubscriptions]:
    async with connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await socket.recv())
        assert ack["type"] == "connection_ack", ack
        yield GraphQLSubscriptions(socket)
