"""Helpers for tests through the real router; the `stack` and `router` fixtures are in
tests/conftest.py, shared with tests/router/."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


async def execute(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
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
async def graphql_ws(url: str, token: str | None = None) -> AsyncIterator[GraphQLSubscriptions]:
    """`token`: signed in, as `connection_init`'s {"Authorization": "Bearer …"}."""
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await socket.recv())
        assert ack["type"] == "connection_ack", ack
        yield GraphQLSubscriptions(socket)
