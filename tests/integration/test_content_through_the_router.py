"""Content at the front door (:8000) and as deployed: REST uploads and downloads through the
router, live document changes over graphql-transport-ws, and streaming with flat memory."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Account, sign_up
from devstack.ports import free_port
from devstack.processes import ManagedProcess, Supervisor
from integration.conftest import execute, graphql_ws

MiB = 1024 * 1024


async def test_rest_upload_download_and_search_through_the_router(router) -> None:
    alice = await sign_up(router)
    created = await router.post(
        "/api/v1/documents", json={"title": "Front door tender"}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    id = created.json()["id"]
    body = b"tender conditions: unicorn clause\n" * 1000
    uploaded = await router.post(
        f"/api/v1/documents/{id}/versions",
        files={"file": ("t.txt", body, "text/plain")},
        headers=alice.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    downloaded = await router.get(f"/api/v1/documents/{id}/content", headers=alice.headers)
    assert downloaded.content == body
    found = await router.get(
        "/api/v1/documents/search", params={"q": "unicorn"}, headers=alice.headers
    )
    assert id in [hit["document"]["id"] for hit in found.json()["items"]]

    stranger = await sign_up(router)
    hidden = await router.get(f"/api/v1/documents/{id}/content", headers=stranger.headers)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"


async def test_sharing_and_new_versions_notify_people_through_the_event_stream(router) -> None:
    """content's outbox -> event stream -> communication -> bob's notifications."""
    alice, bob = await sign_up(router), await sign_up(router)
    created = await router.post(
        "/api/v1/documents", json={"title": "Offer review"}, headers=alice.headers
    )
    id = created.json()["id"]
    shared = await router.post(
        f"/api/v1/documents/{id}/shares",
        json={"permission": "write", "user_id": bob.id},
        headers=alice.headers,
    )
    assert shared.status_code == 201
    uploaded = await router.post(
        f"/api/v1/documents/{id}/versions",
        files={"file": ("offer.txt", b"revised offer", "text/plain")},
        headers=bob.headers,
    )
    assert uploaded.status_code == 201

    inbox = """{ notifications { nodes { title document { id title } } } }"""
    alices, bobs = [], []

    async def about_documents(account: Account) -> list[dict]:
        nodes = (await execute(router, inbox, headers=account.headers))["notifications"]["nodes"]
        return [node for node in nodes if node["document"]]  # not "confirm your email"

    for _ in range(100):
        bobs, alices = await about_documents(bob), await about_documents(alice)
        if bobs and alices:
            break
        await asyncio.sleep(0.2)
    assert [n["title"] for n in bobs] == ["“Offer review” was shared with you"]
    assert bobs[0]["document"] == {"id": id, "title": "Offer review"}
    # The owner hears of bob's new version; bob, who uploaded it, does not.
    assert [n["title"] for n in alices] == ["New version of “Offer review”"]


CHANGES = """subscription($id: ID) { documentChanged(documentId: $id) {
    action version documentId document { title } } }"""


async def first_change(subscriber, router, account: Account, id: str) -> dict:
    """Change the document's title until the subscriber hears of it (live once it listens)."""
    version = (await router.get(f"/api/v1/documents/{id}", headers=account.headers)).json()[
        "version"
    ]
    for attempt in range(20):
        patched = await router.patch(
            f"/api/v1/documents/{id}",
            json={"version": version, "title": f"Watched #{attempt}"},
            headers=account.headers,
        )
        version = patched.json()["version"]
        try:
            event = await asyncio.wait_for(subscriber.receive(), timeout=1.5)
        except TimeoutError:
            continue
        assert "data" in event["payload"], event
        return event["payload"]["data"]["documentChanged"]
    raise AssertionError("no event arrived")


async def test_document_changes_through_the_router(stack, router) -> None:
    alice = await sign_up(router, display_name="Alice")
    id = (
        await router.post("/api/v1/documents", json={"title": "Watched"}, headers=alice.headers)
    ).json()["id"]
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, alice.access_token) as subscriber:
        await subscriber.subscribe(
            """subscription($id: ID) { documentChanged(documentId: $id) {
                action document { title owner { displayName } } } }""",
            {"id": id},
        )
        change = await first_change(subscriber, router, alice, id)
    assert change["action"] == "UPDATED"
    assert change["document"]["title"].startswith("Watched #")
    assert change["document"]["owner"] == {"displayName": "Alice"}  # from identity


async def test_document_changes_reach_those_who_may_read_them(router, content_replica) -> None:
    """Changes made through the router (the stack's content process) reach subscribers of
    another content process: they travel over Redis pub/sub, as between replicas."""
    alice, bob = await sign_up(router), await sign_up(router)
    created = await router.post(
        "/api/v1/documents", json={"title": "Watched"}, headers=alice.headers
    )
    id = created.json()["id"]
    ws_url = content_replica[0].replace("http://", "ws://") + "/graphql"
    async with (
        graphql_ws(ws_url, alice.access_token) as alices,
        graphql_ws(ws_url, bob.access_token) as bobs,
    ):
        await alices.subscribe(CHANGES, {"id": id})
        await bobs.subscribe(CHANGES, {"id": None})
        change = await first_change(alices, router, alice, id)
        assert change["action"] == "UPDATED" and change["documentId"] == id
        assert change["document"]["title"].startswith("Watched #")

        # Bob may not read it: he heard nothing. Once it is shared with him, he does.
        shared = await router.post(
            f"/api/v1/documents/{id}/shares",
            json={"permission": "read", "user_id": bob.id},
            headers=alice.headers,
        )
        assert shared.status_code == 201
        # A title change still in flight from first_change may reach him first, checked once
        # he may read it: only the share is sure to come.
        heard = await asyncio.wait_for(bobs.receive(), timeout=10)
        while heard["payload"]["data"]["documentChanged"]["action"] == "UPDATED":
            heard = await asyncio.wait_for(bobs.receive(), timeout=10)
        assert heard["payload"]["data"]["documentChanged"]["action"] == "SHARED"


async def test_anonymous_subscribers_are_refused(content_replica) -> None:
    ws_url = content_replica[0].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url) as client:
        await client.subscribe(CHANGES, {"id": None})
        message = await asyncio.wait_for(client.receive(), timeout=10)
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.fixture(scope="module")
def content_replica(stack, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A second content process (uvicorn, as deployed) beside the stack's, with a 300 MB
    upload limit: its URL and process id."""
    tmp_path = tmp_path_factory.mktemp("content-replica")
    port = free_port()
    env = {
        **stack.env,
        "HUB_CONTENT_PORT": str(port),
        "HUB_CONTENT_MAX_UPLOAD_BYTES": str(300 * MiB),
        "HUB_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="content-replica",
        argv=[sys.executable, "-m", "subgraphs.content"],
        env=env,
        cwd=ROOT,
        ready_url=f"{url}/health",
    )
    supervisor = Supervisor([process], log_dir=tmp_path, die_with_parent=True)
    supervisor.start()
    try:
        supervisor.wait_ready(60, progress=False)
        assert process.popen is not None
        yield url, process.popen.pid
    finally:
        supervisor.stop()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakMemory:
    """The highest resident size of a process while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> PeakMemory:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


# --- streaming: a 200 MB file, with the process's memory watched ----------------------------


async def test_a_200_mb_file_streams_in_and_out_with_flat_memory(router, content_replica) -> None:
    url, pid = content_replica
    size, chunk = 200 * MiB, b"0123456789abcdef" * 4096  # 64 KiB
    account = await sign_up(router)
    async with httpx.AsyncClient(base_url=url, timeout=120) as content:
        created = await content.post(
            "/api/v1/documents", json={"title": "Big"}, headers=account.headers
        )
        id = created.json()["id"]
        # Warm up (first request imports and allocates what every later one reuses).
        await content.post(
            f"/api/v1/documents/{id}/versions",
            files={"file": ("small.bin", b"x" * MiB, "application/pdf")},
            headers=account.headers,
        )
        boundary = "hub-streaming-test"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        digest = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            yield head
            for _ in range(size // len(chunk)):
                digest.update(chunk)
                yield chunk
            yield tail

        started = time.monotonic()
        async with PeakMemory(pid) as upload_memory:
            uploaded = await content.post(
                f"/api/v1/documents/{id}/versions",
                content=body(),
                headers={
                    **account.headers,
                    "content-type": f"multipart/form-data; boundary={boundary}",
                    "content-length": str(len(head) + size + len(tail)),
                },
            )
        upload_seconds = time.monotonic() - started
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["size"] == size
        assert uploaded.json()["sha256"] == digest.hexdigest()

        received, download = 0, hashlib.sha256()
        started = time.monotonic()
        async with (
            PeakMemory(pid) as download_memory,
            content.stream(
                "GET", f"/api/v1/documents/{id}/content", headers=account.headers
            ) as response,
        ):
            assert response.status_code == 200
            async for part in response.aiter_bytes():
                received += len(part)
                download.update(part)
        download_seconds = time.monotonic() - started
    assert received == size and download.hexdigest() == digest.hexdigest()
    print(
        f"200 MiB: upload {upload_seconds:.1f}s, +{upload_memory.growth / MiB:.1f} MiB RSS; "
        f"download {download_seconds:.1f}s, +{download_memory.growth / MiB:.1f} MiB RSS"
    )
    # Whole-file buffering would add 200 MiB; streaming stays within a few chunks.
    assert upload_memory.growth < 40 * MiB
    assert download_memory.growth < 40 * MiB


def _compiled_answers(stack, service: str) -> float:
    text = httpx.get(f"{stack.urls[service]}/metrics", timeout=30).text
    prefix = f'hub_graphql_compiled_total{{outcome="answered",service="{service}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_the_routers_fetches_are_answered_by_compiled_plans(router, stack) -> None:
    """What the router asks of a subgraph (a plain query, _entities) takes the compiled path:
    a plan per document, the same answer (common/compiled.py)."""
    alice = await sign_up(router)
    created = await router.post(
        "/api/v1/documents", json={"title": "Planned"}, headers=alice.headers
    )
    id = created.json()["id"]
    before = {name: _compiled_answers(stack, name) for name in ("content", "identity")}
    for _ in range(3):
        data = await execute(
            router,
            "query($id: ID!) { document(id: $id) { id title owner { id displayName } } }",
            {"id": id},
            alice.headers,
        )
        assert data["document"]["title"] == "Planned"
        assert data["document"]["owner"]["id"] == alice.id
    # content answered document(id) and identity the owner's _entities, each from a plan
    assert _compiled_answers(stack, "content") - before["content"] >= 3
    assert _compiled_answers(stack, "identity") - before["identity"] >= 3
