"""A real local SMTP server (aiosmtpd) and a real local webhook receiver, for delivery tests.

The fixtures are registered once, by tests/conftest.py, for tests/communication and
tests/integration alike: one server per port per run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from devstack.ports import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on the port the run's communication settings name."""
    box = Mailbox()
    port = int(os.environ["HUB_COMMUNICATION_SMTP_PORT"])
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Webhook endpoints at /<name>: each answers `status[name]` (200 unless set), the
    first call after `delay[name]` seconds when set."""

    url: str
    received: dict[str, list[Received]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}")

    async def hook(request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        state.received.setdefault(name, []).append(Received(dict(request.headers), body))
        state.arrived.set()
        delay = state.delay.pop(name, 0)  # once: the next call is answered at once
        if delay:
            await asyncio.sleep(delay)
        return Response(status_code=state.status.get(name, 200))

    app = Starlette(routes=[Route("/{name}", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    yield state
    server.should_exit = True
    await task
