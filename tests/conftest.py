"""Fixtures shared by the whole suite.

One throwaway deployment per test run: each subgraph gets a database and a Redis
namespace of its own (`hubtest_<run>_<service>`), set in the environment before any
subgraph reads its settings, so in-process apps and the spawned stack use the same
ones. They are dropped when the run ends.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from devstack import DATA_DIR, Stack, ensure_backing_services
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
# pytest loads this file as `tests.conftest` and test modules import it again as `conftest`:
# both copies must agree on the run (its databases, namespaces, ports), hence the environment.
RUN_ID = os.environ.setdefault("HUB_TEST_RUN_ID", uuid.uuid4().hex[:8])
SERVICES = ("identity", "content", "communication", "workflow")

for _name in SERVICES:
    os.environ[f"HUB_{_name.upper()}_DATABASE_NAME"] = f"hubtest_{RUN_ID}_{_name}"
    os.environ[f"HUB_{_name.upper()}_REDIS_NAMESPACE"] = f"hubtest:{RUN_ID}:{_name}"
os.environ.setdefault("HUB_ENV", "development")
os.environ["HUB_EVENTS_STREAM"] = f"hubtest:{RUN_ID}:events"
# Communication's delivery, fast enough to watch retries and a dead worker's redelivery;
# its SMTP server is the local one tests/integration/test_communication.py starts.
SMTP_PORT = int(os.environ.setdefault("HUB_TEST_SMTP_PORT", str(random.randint(20000, 29999))))
COMMUNICATION_TEST_ENV = {
    "HUB_COMMUNICATION_SMTP_PORT": str(SMTP_PORT),
    "HUB_COMMUNICATION_RETRY_BASE_SECONDS": "0.5",
    "HUB_COMMUNICATION_RETRY_MAX_SECONDS": "2",
    "HUB_COMMUNICATION_MAX_ATTEMPTS": "3",
    "HUB_COMMUNICATION_SEND_TIMEOUT_SECONDS": "3",
    "HUB_COMMUNICATION_TASK_VISIBILITY_TIMEOUT": "12",
    "HUB_COMMUNICATION_STRANDED_AFTER_SECONDS": "3",
    "HUB_COMMUNICATION_SWEEP_INTERVAL_SECONDS": "1",
    # The local webhook receiver (tests/communication/servers.py) listens on loopback.
    "HUB_COMMUNICATION_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
}
os.environ.update(COMMUNICATION_TEST_ENV)
# Content's uploaded files, for in-process apps and the spawned stack alike.
CONTENT_FILES = Path(tempfile.gettempdir()) / f"hubtest_{RUN_ID}_content_files"
os.environ["HUB_CONTENT_STORAGE_PATH"] = str(CONTENT_FILES)
CORPUS_TYPES = ROOT / "tests" / "workflow" / "corpus" / "document_types.yaml"

from communication.servers import mailbox, receiver  # noqa: E402, F401  (fixtures)

from subgraphs.catalog import SUBGRAPHS  # noqa: E402  (after the environment is set)
from subgraphs.common.auth import TokenVerifier  # noqa: E402
from subgraphs.common.database import drop_database  # noqa: E402
from subgraphs.common.subgraph import Subgraph  # noqa: E402

BY_NAME = {subgraph.name: subgraph for subgraph in SUBGRAPHS}


@pytest.fixture(scope="session", autouse=True)
def databases() -> Iterator[None]:
    """Create and migrate the run's databases through the real CLI; drop them afterwards."""
    subprocess.run([sys.executable, "-m", "subgraphs", "migrate"], cwd=ROOT, check=True)
    yield
    import asyncio

    import redis

    async def drop_all() -> None:
        for subgraph in SUBGRAPHS:
            await drop_database(subgraph.settings().database_dsn)

    asyncio.run(drop_all())
    settings = SUBGRAPHS[0].settings()
    client = redis.Redis.from_url(settings.redis_dsn)
    for key in client.scan_iter(match=f"hubtest:{RUN_ID}:*", count=1000):
        client.delete(key)
    shutil.rmtree(CONTENT_FILES, ignore_errors=True)


@pytest.fixture(scope="session")
async def apps() -> AsyncIterator[dict[str, FastAPI]]:
    """Each subgraph's FastAPI app, in this process, over the run's databases.

    The other subgraphs verify tokens against identity's JWKS, fetched from the
    in-process identity app instead of over the network.
    """
    built = {subgraph.name: subgraph.app() for subgraph in SUBGRAPHS}
    identity = built["identity"]

    async def identity_jwks() -> dict[str, object]:
        async with client_for(identity) as client:
            response = await client.get("/.well-known/jwks.json")
            response.raise_for_status()
            return response.json()

    hub = SUBGRAPHS[0].settings().hub
    for name, app in built.items():
        if name != "identity":
            app.state.verifier = TokenVerifier(
                identity_jwks, issuer=hub.jwt_issuer, audience=hub.jwt_audience
            )
    yield built
    for app in built.values():
        await app.state.redis.close()
        await app.state.engine.dispose()


@pytest.fixture(params=SERVICES)
def subgraph(request: pytest.FixtureRequest) -> Subgraph:
    return BY_NAME[request.param]


def client_for(app: object, ip: str | None = None) -> httpx.AsyncClient:
    """An HTTP client calling the app in-process, from its own loopback address.

    A fresh address per client keeps per-IP throttling of one test from locking out
    the next ones.
    """
    ip = ip or f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),  # type: ignore[arg-type]
        base_url="http://testserver",
    )


@pytest.fixture
async def clients(apps: dict[str, object]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    clients = {name: client_for(app, ip) for name, app in apps.items()}
    yield clients
    for client in clients.values():
        await client.aclose()


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[StatementCounter]:
    """Every SQL statement the engine sends while the block runs."""
    counter = StatementCounter()

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        counter.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return response.json()


PASSWORD = "a sturdy passphrase 42"


@dataclass
class Account:
    """A registered user, signed in: what a test needs to act as them."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(
    identity: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Ada",
    roles: tuple[str, ...] = (),
    apps: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> Account:
    """Register and log in through identity's REST API.

    `roles` are granted platform-wide straight in the database (it is how a deployment
    makes its first administrator), so `apps` is needed with them.
    """
    email = email or unique_email()
    response = await identity.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": display_name},
    )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    if roles:
        assert apps is not None, "granting roles needs the apps fixture"
        from subgraphs.identity.models import RoleAssignment

        async with apps["identity"].state.sessions() as session:  # type: ignore[attr-defined]
            session.add_all(RoleAssignment(user_id=uuid.UUID(user_id), role=r) for r in roles)
            await session.commit()
    tokens = await identity.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers or {}
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return Account(user_id, email, password, body["access_token"], body["refresh_token"])


# --- the real stack, for tests/integration/ and tests/router/ ---------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Router, four subgraphs and the Celery worker, started once per run.

    It runs on free ports over the run's throwaway databases and Redis namespace (the same
    ones the in-process tests use), exactly as `scripts/up` would start it. A test that
    stops one of its processes restarts it before it ends (`stack.restart_service`).
    """
    backing = ensure_backing_services(DATA_DIR, log=lambda *_: None)
    log_dir = tmp_path_factory.mktemp("stack-logs")
    stack = Stack.for_tests(
        backing,
        log_dir=log_dir,
        database_prefix=f"hubtest_{RUN_ID}",
        redis_namespace=f"hubtest:{RUN_ID}",
        env={
            "HUB_CONTENT_STORAGE_PATH": str(CONTENT_FILES),
            # The whole suite is one client (127.0.0.1) of this router: a per-client limit
            # would only make tests flaky. tests/router/ checks it on a router of its own.
            "HUB_ROUTER_RATE_LIMIT": "off",
            # Document types the suggestion tests classify into (workflow's sample corpus).
            "HUB_CONTENT_DOCUMENT_TYPES_FILE": str(CORPUS_TYPES),
            **COMMUNICATION_TEST_ENV,
        },
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


def code_at(secret: str, steps_from_now: int) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_from_now)


async def enroll(identity, account) -> tuple[str, list[str]]:
    """Turn MFA on for the account; its secret and recovery codes. Uses this time step."""
    setup = await identity.post("/api/v1/auth/mfa/setup", headers=account.headers)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    confirm = await identity.post(
        "/api/v1/auth/mfa/confirm", json={"code": code_at(secret, -1)}, headers=account.headers
    )
    assert confirm.status_code == 200, confirm.text
    return secret, confirm.json()["recovery_codes"]
