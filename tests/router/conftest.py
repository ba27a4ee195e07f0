"""Fixtures for the router's edge: the session stack's router, and one production router.

The production router is a second router process (not a second stack): HUB_ENV=production,
trusted documents only, a small rate limit and a short subgraph timeout, in front of the
session stack's subgraphs — except workflow, which it reaches at a "black hole" that
accepts connections and never answers, so timeouts can be tested without a slow subgraph.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import Account, sign_up
from devstack import Stack
from devstack.ports import free_port
from devstack.processes import ManagedProcess, Supervisor
from prometheus_client.parser import text_string_to_metric_families

# The documents the production router accepts, by id (graphql-codegen's manifest format).
TRUSTED_DOCUMENTS = {
    "documents": "query Documents { documents(first: 2) { nodes { id title } } }",
    "workflows": "query Workflows { workflowInstances(first: 1) { nodes { id } } }",
    "introspection": "query Introspect { __schema { queryType { name } } }",
}
PRODUCTION_RATE_LIMIT = 5  # requests per minute and client


@dataclass
class ProductionRouter:
    url: str
    log_file: Path
    collector: TraceCollector


class TraceCollector:
    """Stands in for an OpenTelemetry collector: records the paths of OTLP/HTTP posts."""

    def __init__(self) -> None:
        paths: list[str] = []
        self.paths = paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_router(
    stack: Stack, directory: Path, name: str, env: dict[str, str]
) -> tuple[str, Supervisor]:
    """Another router on the stack's subgraphs, with `env` over the stack's settings."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name=name,
        argv=[str(stack.root / "router" / "start")],
        env={**stack.env, "HUB_ROUTER_PORT": str(port), **env},
        cwd=stack.root,
        ready_url=f"{url}/healthcheck",
    )
    supervisor = Supervisor([process], log_dir=directory, die_with_parent=True)
    supervisor.start()
    return url, supervisor


async def outcomes(router: httpx.AsyncClient, counter: str) -> dict[str, float]:
    """The router's counter `counter` (its name without `_total`) by its `outcome` label."""
    text = (await router.get("/metrics")).text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == counter
        for sample in family.samples
        if sample.name == f"{counter}_total"
    }


async def lane_outcomes(router: httpx.AsyncClient) -> dict[str, float]:
    """What the fast lane did (hub_router_fast_lane_total), by outcome."""
    return await outcomes(router, "hub_router_fast_lane")


async def short_lived_token(apps, account: Account, seconds: int) -> str:
    """The account's access token re-signed by identity's current key to expire in `seconds`."""
    from subgraphs.identity import keys
    from subgraphs.identity.settings import IdentitySettings

    identity = apps["identity"]
    settings: IdentitySettings = identity.state.settings
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + seconds, jti=uuid.uuid4().hex)
    async with identity.state.sessions() as session:
        key = await keys.current_key(session, settings)
    assert timedelta(seconds=seconds) < timedelta(seconds=settings.access_token_seconds)
    return keys.sign(key, claims)


class BlackHole:
    """A TCP server that accepts connections, reads what comes and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, name="black-hole", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)  # kept open, never read or answered

    def close(self) -> None:
        self.closed.set()
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture(scope="session")
def production_router(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProductionRouter]:
    directory = tmp_path_factory.mktemp("production-router")
    manifest = directory / "persisted-documents.json"
    manifest.write_text(json.dumps(TRUSTED_DOCUMENTS))
    black_hole = BlackHole()
    collector = TraceCollector()
    port = free_port()
    env = {
        **stack.env,
        "HUB_ENV": "production",
        "HUB_ROUTER_PORT": str(port),
        "HUB_ROUTER_PERSISTED_DOCUMENTS": str(manifest),
        "HUB_ROUTER_RATE_LIMIT": f"{PRODUCTION_RATE_LIMIT}/1m",
        # Each test poses as its own client (X-Forwarded-For) so budgets do not mix.
        "HUB_ROUTER_TRUST_FORWARDED_FOR": "true",
        "HUB_ROUTER_SUBGRAPH_TIMEOUT": "1",
        "HUB_WORKFLOW_URL": f"http://127.0.0.1:{black_hole.port}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export spans every 0.2 s, not every 5 s
    }
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="production-router",
        argv=[str(stack.root / "router" / "start")],
        env=env,
        cwd=stack.root,
        ready_url=f"{url}/healthcheck",
    )
    supervisor = Supervisor([process], log_dir=directory, die_with_parent=True)
    supervisor.start()
    try:
        supervisor.wait_ready(60, progress=False)
        yield ProductionRouter(url, supervisor.log_file(process.name), collector)
    finally:
        supervisor.stop()
        black_hole.close()
        collector.close()


_clients = iter(range(1, 1_000_000))


def own_address() -> dict[str, str]:
    """An X-Forwarded-For no other client of this test run sends: a rate limit of its own."""
    n = next(_clients)
    return {"x-forwarded-for": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}


async def create_document(
    router: httpx.AsyncClient, account: Account, title: str
) -> dict[str, Any]:
    """A document of `account`'s, made through the router's REST path."""
    response = await router.post(
        "/api/v1/documents",
        json={"title": title, "owner_id": account.id},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def production(production_router: ProductionRouter) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the production router with an address (X-Forwarded-For) of its own."""
    async with httpx.AsyncClient(
        base_url=production_router.url, timeout=30, headers=own_address()
    ) as client:
        yield client


@pytest.fixture
async def account(router: httpx.AsyncClient) -> Account:
    """A user registered and logged in through the router's REST front door (identity)."""
    return await sign_up(router)
