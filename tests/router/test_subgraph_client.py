"""The lanes' HTTP client (router/plugins/subgraph-client.ts).

The fast and early lanes ask a subgraph over kept-alive connections of their own, reading
only plain answers (a status line, headers, a Content-Length body). These tests put a
router in front of a workflow stand-in that speaks HTTP/1.1 as each test tells it to, and
check that every answer the client gets is the subgraph's, whichever way it was written,
and that the lane keeps its connections, honours `Connection: close`, asks again once on
a new connection when the subgraph closed a kept one, and hands an answer it does not read
to the normal path.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from devstack import Stack
from router.conftest import lane_outcomes, start_router

ANSWER = b'{"data":{"workflowInstances":{"nodes":[{"id":"w-1"}]}}}'
EXPECTED = {"data": {"workflowInstances": {"nodes": [{"id": "w-1"}]}}}


class ScriptedSubgraph:
    """Answers every POST with ANSWER, written as `mode` says:

    - plain: one write, `Content-Length`, the connection kept;
    - close: `Connection: close`, then the connection closed;
    - pieces: the head and body in several writes, 20 ms apart;
    - chunked: `Transfer-Encoding: chunked`;
    - drop_second: the first request of a connection answered plainly, the second met by
      closing the connection unanswered (a kept connection the subgraph was closing).
    """

    def __init__(self) -> None:
        self.mode = "plain"
        self.connections = 0
        self.requests = 0
        self.open: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, name="scripted-subgraph", daemon=True).start()

    def use(self, mode: str) -> None:
        """From now on answer as `mode` says, on new connections only."""
        self.mode = mode
        for connection in self.open:
            # shutdown, not only close: it sends the FIN while a thread waits in recv
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.open.clear()
        time.sleep(0.2)
        self.connections = self.requests = 0

    def close(self) -> None:
        self.server.close()
        for connection in self.open:
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.open.append(connection)
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        served = 0
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for n, _, v in (h.partition(":") for h in lines[1:])
                        if n.strip().lower() == "content-length"
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                buffer = buffer[length:]
                if not lines[0].startswith("POST"):
                    connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    continue
                self.requests += 1
                served += 1
                if not self._answer(connection, served):
                    return
        except OSError:
            return
        finally:
            connection.close()

    def _answer(self, connection: socket.socket, served: int) -> bool:
        """Answer one request; False when the connection is to be closed."""
        plain = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        )
        if self.mode == "plain" or (self.mode == "drop_second" and served == 1):
            connection.sendall(plain)
            return True
        if self.mode == "drop_second":
            return False
        if self.mode == "close":
            connection.sendall(plain.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
            return False
        if self.mode == "pieces":
            for start in range(0, len(plain), 40):
                connection.sendall(plain[start : start + 40])
                time.sleep(0.02)
            return True
        assert self.mode == "chunked"
        connection.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(ANSWER), ANSWER)
        )
        return True


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedSubgraph]:
    subgraph = ScriptedSubgraph()
    yield subgraph
    subgraph.close()


@pytest.fixture(scope="module")
def scripted_router(
    stack: Stack, scripted: ScriptedSubgraph, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("scripted-router")
    url, supervisor = start_router(stack, directory, "scripted", {"HUB_WORKFLOW_URL": scripted.url})
    try:
        supervisor.wait_ready(90, progress=False)
        yield url
    finally:
        supervisor.stop()


@pytest.fixture
async def client(scripted_router: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=scripted_router, timeout=30) as client:
        yield client


async def ask(client: httpx.AsyncClient, times: int) -> dict[str, float]:
    """A query new to the router `times` times (the first teaches the lane its plan);
    every answer must be the subgraph's. Returns the lane's outcomes meanwhile."""
    name = f"Scripted_{uuid.uuid4().hex[:8]}"
    query = f"query {name} {{ workflowInstances(first: 1) {{ nodes {{ id }} }} }}"
    before = await lane_outcomes(client)
    for _ in range(times):
        response = await client.post("/graphql", json={"query": query})
        assert response.status_code == 200, response.text
        assert response.json() == EXPECTED
    after = await lane_outcomes(client)
    return {outcome: after[outcome] - before.get(outcome, 0) for outcome in after}


async def test_lane_requests_share_kept_connections(client, scripted) -> None:
    scripted.use("plain")
    outcomes = await ask(client, 12)
    assert outcomes.get("served") == 11  # all but the first, which taught the lane
    assert sum(outcomes.values()) == 11  # nothing handed back
    # One for the normal path's first request, one the lane kept for the other eleven.
    assert scripted.connections <= 2, scripted.connections


async def test_connection_close_is_honoured(client, scripted) -> None:
    scripted.use("close")
    outcomes = await ask(client, 6)
    assert outcomes.get("served") == 5
    assert sum(outcomes.values()) == 5
    assert scripted.connections == scripted.requests == 6


async def test_an_answer_written_in_pieces_is_read_whole(client, scripted) -> None:
    scripted.use("pieces")
    outcomes = await ask(client, 4)
    assert outcomes.get("served") == 3
    assert sum(outcomes.values()) == 3


async def test_a_kept_connection_the_subgraph_closed_is_asked_again_on_a_new_one(
    client, scripted
) -> None:
    scripted.use("drop_second")
    outcomes = await ask(client, 6)
    assert outcomes.get("served") == 5
    assert sum(outcomes.values()) == 5
    # The normal path's first request and the lane's first each on a new connection; each
    # lane request after that met its kept connection closed and went again on a new one.
    assert scripted.connections == 6
    assert scripted.requests == 2 + 4 * 2


async def test_an_answer_the_lane_does_not_read_is_answered_by_the_normal_path(
    client, scripted
) -> None:
    scripted.use("chunked")
    outcomes = await ask(client, 5)
    assert outcomes.get("served", 0) == 0
    assert outcomes.get("fallback_unreadable", 0) == 4  # each lane try, then the normal path
    assert scripted.requests == 9  # the first, then each of the four twice
