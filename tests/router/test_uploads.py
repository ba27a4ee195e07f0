"""Files through the router: REST uploads and downloads streamed, GraphQL multipart uploads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from pathlib import Path

MiB = 1024 * 1024
FILE_SIZE = 64 * MiB  # more than a buffering router could hide below its earlier peaks


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory (VmHWM) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def new_document(router, account) -> str:
    created = await router.post(
        "/api/v1/documents", json={"title": "Large file"}, headers=account.headers
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_a_large_file_streams_up_and_down_through_the_router(stack, router, account) -> None:
    async def upload(document: str, data: bytes):
        return await router.post(
            f"/api/v1/documents/{document}/versions",
            files={"file": ("big.txt", data, "text/plain")},
            headers=account.headers,
        )

    # A first, small transfer: the router's first buffers and code paths warm up.
    assert (await upload(await new_document(router, account), b"warm-up" * MiB)).is_success
    router_pid = stack.supervisor.process("router").popen.pid
    peak_before = peak_rss_bytes(router_pid)

    document = await new_document(router, account)
    data = os.urandom(MiB) * (FILE_SIZE // MiB)
    digest = hashlib.sha256(data).hexdigest()
    uploaded = await upload(document, data)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size"] == FILE_SIZE and uploaded.json()["sha256"] == digest

    received = hashlib.sha256()
    size = 0
    async with router.stream(
        "GET", f"/api/v1/documents/{document}/content", headers=account.headers
    ) as download:
        assert download.status_code == 200
        assert download.headers["content-length"] == str(FILE_SIZE)
        async for chunk in download.aiter_raw():
            received.update(chunk)
            size += len(chunk)
    assert size == FILE_SIZE and received.hexdigest() == digest

    # Streamed, not buffered: 128 MiB went through; the router's peak memory barely moved.
    grown = peak_rss_bytes(router_pid) - peak_before
    assert grown < FILE_SIZE // 2, f"router peak memory grew by {grown // MiB} MiB"


async def test_a_graphql_multipart_upload_reaches_the_subgraph(router, account) -> None:
    document = await new_document(router, account)
    data = b"uploaded through the router's GraphQL endpoint\n" * 1000
    operations = {
        "query": """mutation($id: ID!, $file: Upload!) {
            uploadDocumentVersion(documentId: $id, file: $file) {
                __typename ... on DocumentVersion { number size sha256 } } }""",
        "variables": {"id": document, "file": None},
    }
    response = await router.post(
        "/graphql",
        files={
            "operations": (None, json.dumps(operations)),
            "map": (None, json.dumps({"0": ["variables.file"]})),
            "0": ("notes.txt", data, "text/plain"),
        },
        headers={**account.headers, "graphql-preflight": "1"},
    )
    assert response.status_code == 200, response.text
    version = response.json()["data"]["uploadDocumentVersion"]
    assert version == {
        "__typename": "DocumentVersion",
        "number": 1,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def test_a_rest_upload_over_the_router_limit_is_refused_with_413(stack, account) -> None:
    """Refused on its declared length, before a byte of it is read or forwarded."""
    host, port = stack.urls["router"].removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /api/v1/documents/{uuid.uuid4()}/versions HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Authorization: {account.headers['authorization']}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {200 * MiB}\r\n\r\n"
        ).encode()
        + b"--x\r\n"
    )
    await writer.drain()
    head, _, body = (await reader.read(65536)).partition(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in head.lower()
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
