"""The early lane (router/plugins/early-lane.ts, HUB_ROUTER_EARLY_LANE).

A repeat of a request the fast lane served cleanly through the whole normal path (same
query text or persisted id, operation name, Content-Type and Accept, same caller as the
authorization verdict sees it; only the variables differ) is answered at Yoga's onRequest
stage, or by its server stage before that, straight from Node's request (with a token both
the JWT and rate limit plugins verified, or none). The session stack's router has it on (the
default). A second router in front of the
same subgraphs has it off (HUB_ROUTER_EARLY_LANE=off, the fast lane still on): every request
here goes to both, and their answers must be the same, byte for byte, with the same
refusals. `hub_router_early_lane_total` shows what the lane did (`learnt`, `served`,
`handed_on`); a document's first request is the fast lane's learning run, its second the
early lane's, so the third is the first one it may answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import Account, sign_up
from devstack import Stack
from prometheus_client.parser import text_string_to_metric_families
from router.conftest import (
    create_document,
    outcomes,
    own_address,
    short_lived_token,
    start_router,
)

RUN = uuid.uuid4().hex[:8]  # document texts of this run only: no other test warmed them

GUARDED_RATE_LIMIT = 8  # requests per minute and client, on the guarded router
TRUSTED_DOCUMENTS = {
    "document": "query TrustedDoc($id: ID!) { document(id: $id) { id title status } }",
}


@pytest.fixture(scope="session")
def early_off_router(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("early-off-router")
    url, supervisor = start_router(stack, directory, "early-off", {"HUB_ROUTER_EARLY_LANE": "off"})
    try:
        supervisor.wait_ready(90, progress=False)
        yield url
    finally:
        supervisor.stop()


@pytest.fixture(scope="session")
def guarded_router(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Production settings with the early lane on: trusted documents only, a rate limit."""
    directory = tmp_path_factory.mktemp("guarded-router")
    manifest = directory / "persisted-documents.json"
    manifest.write_text(json.dumps(TRUSTED_DOCUMENTS))
    env = {
        "HUB_ENV": "production",
        "HUB_ROUTER_PERSISTED_DOCUMENTS": str(manifest),
        "HUB_ROUTER_RATE_LIMIT": f"{GUARDED_RATE_LIMIT}/1m",
        "HUB_ROUTER_TRUST_FORWARDED_FOR": "true",  # each test its own client address
    }
    url, supervisor = start_router(stack, directory, "guarded", env)
    try:
        supervisor.wait_ready(90, progress=False)
        yield url
    finally:
        supervisor.stop()


class Relay:
    """A TCP relay in front of a subgraph that can turn silent: it then reads what comes on
    every connection, open or new, and never passes it on (a subgraph that stopped answering)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.silent = threading.Event()
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.socket.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if requests and self.silent.is_set():
                    continue  # swallowed: never answered
                sink.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.socket.close()
        for s in self.sockets:
            s.close()


@pytest.fixture(scope="session")
def flaky_content(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Relay]]:
    """A router reaching content through a relay that can turn silent; 1-second timeout."""
    directory = tmp_path_factory.mktemp("flaky-content-router")
    content_port = int(stack.urls["content"].rsplit(":", 1)[1])
    relay = Relay(content_port)
    env = {
        "HUB_ROUTER_SUBGRAPH_TIMEOUT": "1",
        "HUB_CONTENT_URL": f"http://127.0.0.1:{relay.port}",
    }
    url, supervisor = start_router(stack, directory, "flaky-content", env)
    try:
        supervisor.wait_ready(90, progress=False)
        yield url, relay
    finally:
        supervisor.stop()
        relay.close()


@pytest.fixture
async def early_off(early_off_router: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=early_off_router, timeout=30) as client:
        yield client


@pytest.fixture
async def guarded(guarded_router: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the guarded router with an address (X-Forwarded-For) of its own."""
    async with httpx.AsyncClient(
        base_url=guarded_router, timeout=30, headers=own_address()
    ) as client:
        yield client


async def early_outcomes(router: httpx.AsyncClient) -> dict[str, float]:
    return await outcomes(router, "hub_router_early_lane")


async def served_early(router: httpx.AsyncClient) -> float:
    return (await early_outcomes(router)).get("served", 0.0)


async def served_by_server_stage(router: httpx.AsyncClient) -> float:
    """Of the early answers, those the server stage gave (before the server adapter)."""
    text = (await router.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hub_router_early_lane_server_total"
    )


def comparable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's headers, in order, without the values that differ on every response."""
    return [
        (name, "<varies>" if name in ("x-request-id", "date") else value.decode())
        for raw, value in response.headers.raw
        for name in [raw.decode().lower()]
    ]


async def both(
    router: httpx.AsyncClient,
    early_off: httpx.AsyncClient,
    body: dict[str, Any] | str,
    headers: dict[str, str] | None = None,
    times: int = 3,
) -> httpx.Response:
    """Send `body` to both routers `times` times; every answer must be the same bytes."""
    first: httpx.Response | None = None
    content = body if isinstance(body, str) else json.dumps(body)
    sent = {"content-type": "application/json", **(headers or {})}
    for _ in range(times):
        early = await router.post("/graphql", content=content, headers=sent)
        plain = await early_off.post("/graphql", content=content, headers=sent)
        assert early.status_code == plain.status_code, (early.text, plain.text)
        assert early.content == plain.content
        assert comparable_headers(early) == comparable_headers(plain)
        first = first or early
    assert first is not None
    return first


@pytest.fixture
async def document(router: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    return await create_document(router, account, f"Early lane {RUN}")


async def other_documents(router: httpx.AsyncClient, account: Account, n: int) -> list[str]:
    return [
        (await create_document(router, account, f"Early lane {RUN} #{i}"))["id"] for i in range(n)
    ]


# --- what it answers, and how ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"accept": "application/json"},
        {"accept": "application/graphql-response+json"},
        {"accept": "*/*"},
        {"content-type": "application/json; charset=utf-8"},
    ],
    ids=["default-accept", "json", "graphql-response", "any", "charset"],
)
async def test_a_repeated_query_is_answered_early_with_the_same_bytes_and_headers(
    router, early_off, account, headers
) -> None:
    ids = await other_documents(router, account, 4)
    query = (
        f"query Doc_{RUN}($id: ID!) {{ document(id: $id) {{ id title status owner {{ id }} }} }}"
    )
    before = await served_early(router)
    before_server = await served_by_server_stage(router)
    for id_ in ids:  # different variables every time: only the text must repeat
        response = await both(
            router,
            early_off,
            {"query": query, "variables": {"id": id_}},
            {**account.headers, **headers},
            times=1,
        )
        assert response.json()["data"]["document"]["id"] == id_
    assert await served_early(router) - before >= 2, "the early lane answered no repeat"
    # No Origin, a token already verified: the server stage answered them.
    assert await served_by_server_stage(router) - before_server >= 2


async def test_what_the_server_stage_reads_and_does_not_answer_gets_the_normal_answer(
    router, early_off, account, document
) -> None:
    """Once the lane is warm, the server stage reads every small JSON POST to /graphql; what it
    does not answer goes on with the body it read, and is answered as by the router without
    the lane: byte for byte, errors included."""
    query = f"query Read_{RUN}($id: ID!) {{ document(id: $id) {{ id title }} }}"
    warm = {"query": query, "variables": {"id": document["id"]}}
    await both(router, early_off, warm, account.headers)
    before = await served_early(router)
    other = {"query": f"query ReadOther_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    sent: list[dict[str, Any] | str] = [
        other,  # not learnt yet (its first request)
        '{"query": "query { documents(first: 1) { nodes { id } } }"',  # not JSON
        "{}",  # an object without a query
        "[]",  # a batch of nothing
        '"query"',  # JSON, not an object
        {"query": query, "variables": {"id": document["id"]}, "extensions": {"x": 1}},
        {"query": query, "variables": ["not", "an", "object"]},
        {"query": query, "variables": {"id": 42}},  # refused by the variables' coercion
    ]
    for body in sent:
        await both(router, early_off, body, account.headers, times=1)
    rename = (
        "mutation Rename($input: UpdateDocumentInput!) { updateDocument(input: $input) {"
        " ... on Document { id title } } }"
    )
    changes = {"id": document["id"], "version": document["version"], "title": f"Renamed {RUN}"}
    response = await router.post(
        "/graphql", json={"query": rename, "variables": {"input": changes}}, headers=account.headers
    )
    assert response.json() == {
        "data": {"updateDocument": {"id": document["id"], "title": changes["title"]}}
    }
    assert await served_early(router) == before


async def test_a_request_with_two_authorization_headers_is_answered_as_without_the_lane(
    router, early_off, account, document
) -> None:
    body = {
        "query": f"query Twice_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}",
        "variables": {"id": document["id"]},
    }
    await both(router, early_off, body, account.headers)
    content = json.dumps(body).encode()
    twice = [
        ("content-type", "application/json"),
        ("authorization", account.headers["authorization"]),
        ("authorization", "Bearer not-a-token"),
    ]
    for _ in range(2):
        early = await router.post("/graphql", content=content, headers=twice)
        plain = await early_off.post("/graphql", content=content, headers=twice)
        assert early.status_code == plain.status_code
        assert early.content == plain.content


@pytest.mark.parametrize("accept", ["text/event-stream", "multipart/mixed"])
async def test_an_answer_streamed_as_events_or_parts_is_never_learnt(
    router, early_off, account, document, accept
) -> None:
    body = {
        "query": f"query Streamed_{RUN}($id: ID!) {{ document(id: $id) {{ id title }} }}",
        "variables": {"id": document["id"]},
    }
    before = await early_outcomes(router)
    response = await both(router, early_off, body, {**account.headers, "accept": accept}, times=4)
    assert response.headers["content-type"].startswith(accept)
    after = await early_outcomes(router)
    assert after.get("learnt", 0) == before.get("learnt", 0)
    assert after.get("served", 0) == before.get("served", 0)


async def test_an_anonymous_caller_is_answered_early_too(router, early_off) -> None:
    body = {"query": f"query Public_{RUN} {{ documents(first: 2) {{ nodes {{ id }} }} }}"}
    before = await served_early(router)
    await both(router, early_off, body, times=4)
    assert await served_early(router) - before >= 2


async def test_the_request_id_goes_in_and_comes_out(stack, router, account, document) -> None:
    body = {
        "query": f"query Traced_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}",
        "variables": {"id": document["id"]},
    }
    for _ in range(2):
        await router.post("/graphql", json=body, headers=account.headers)
    before = await served_early(router)
    request_id = f"early-{uuid.uuid4().hex}"
    response = await router.post(
        "/graphql", json=body, headers={"x-request-id": request_id, **account.headers}
    )
    assert response.headers["x-request-id"] == request_id
    assert await served_early(router) == before + 1
    lines = [
        line
        for line in (stack.log_dir / "content.log").read_text().splitlines()
        if request_id in line
    ]
    assert lines and all(f"[{request_id}]" in line for line in lines)
    made = await router.post(
        "/graphql", json=body, headers={"x-request-id": "bad id!", **account.headers}
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", made.headers["x-request-id"])  # a new one, as always


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def operation_series(text: str, operation: str) -> Series:
    """How many requests of `operation` (and subgraph requests) each standard series counted,
    by labels; the router's own URL left out: the two routers differ only by port."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if sample.name.startswith("graphql_yoga_http"):
                labels.pop("url")
            # The subgraph requests (named by the plan, not the client) of this test's window.
            gateway = sample.name.startswith("graphql_gateway_")
            if not gateway and operation not in labels.get("operationName", ""):
                continue
            if sample.name.endswith(("_bucket", "_sum", "_created")):
                continue  # how long it took differs; how many were counted must not
            found[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return found


async def test_requests_answered_early_are_counted_in_the_same_series(
    router, early_off, account
) -> None:
    ids = await other_documents(router, account, 2)
    operation = f"Counted_{RUN}"
    query = f"query {operation}($id: ID!) {{ document(id: $id) {{ id title }} }}"

    async def counts(client: httpx.AsyncClient) -> Series:
        return operation_series((await client.get("/metrics")).text, operation)

    # Warm both (two requests each), then measure ten more on each.
    for client in (router, early_off):
        for id_ in ids:
            body = {"query": query, "variables": {"id": id_}}
            await client.post("/graphql", json=body, headers=account.headers)
    before = {client: await counts(client) for client in (router, early_off)}
    served = await served_early(router)
    for n in range(10):
        for client in (router, early_off):
            body = {"query": query, "variables": {"id": ids[n % 2]}}
            response = await client.post("/graphql", json=body, headers=account.headers)
            assert response.status_code == 200 and "errors" not in response.json()
    assert await served_early(router) - served == 10
    deltas = []
    for client in (router, early_off):
        after = await counts(client)
        changed = {key: value - before[client].get(key, 0.0) for key, value in after.items()}
        deltas.append({key: delta for key, delta in changed.items() if delta})
    assert deltas[0] == deltas[1]
    counted = {name: value for (name, _), value in deltas[0].items()}
    assert counted["graphql_envelop_request_total"] == 10, deltas[0]
    assert counted["graphql_yoga_http_duration_count"] == 10, deltas[0]
    assert counted["graphql_gateway_subgraph_execute_duration_count"] == 10, deltas[0]
    assert counted["graphql_gateway_fetch_duration_count"] == 10, deltas[0]
    # The URL label is the one the server adapter would have made.
    urls = {
        sample.labels["url"]
        for family in text_string_to_metric_families((await router.get("/metrics")).text)
        for sample in family.samples
        if sample.name == "graphql_yoga_http_duration_count"
        and sample.labels.get("operationName") == operation
    }
    assert urls == {f"http://{router.base_url.netloc.decode()}/graphql"}
    http = [labels for name, labels in deltas[0] if name == "graphql_yoga_http_duration_count"]
    assert dict(http[0]) == {
        "method": "POST",
        "operationName": operation,
        "operationType": "query",
        "statusCode": "200",
    }


# --- every check still applies ------------------------------------------------------------


async def test_a_bad_token_is_refused_after_the_lane_is_warm(router, early_off, account) -> None:
    body = {"query": f"query Warm_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    await both(router, early_off, body, account.headers, times=4)
    before = await served_early(router)
    token = account.access_token
    forged = {
        "authorization": f"Bearer {token[:-6]}{'AAAAAA' if token[-6:] != 'AAAAAA' else 'BBBBBB'}"
    }
    response = await both(router, early_off, body, forged, times=2)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await both(router, early_off, body, {"authorization": "Bearer not-a-token"}, times=2)
    assert response.status_code == 400, response.text  # not even a JWT
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Another spelling of the scheme is the JWT plugin's to judge, every time.
    await both(router, early_off, body, {"authorization": f"bearer {token}"}, times=2)
    assert await served_early(router) == before


async def test_a_token_that_expired_is_refused_even_though_it_was_answered_early(
    router, early_off, apps, account
) -> None:
    token = await short_lived_token(apps, account, seconds=4)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    headers = {"authorization": f"Bearer {token}"}
    body = {"query": f"query Expiring_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    before = await served_early(router)
    await both(router, early_off, body, headers, times=3)
    assert await served_early(router) - before >= 1, "not answered early while it was valid"
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 1.1)
    served = await served_early(router)
    response = await both(router, early_off, body, headers, times=2)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await served_early(router) == served


@pytest.mark.parametrize(
    ("query", "refused_field"),
    [
        ("query Me_{run} {{ me {{ id email }} }}", "me"),
        ("query Users_{run} {{ users(first: 1) {{ nodes {{ id }} }} }}", "users"),
    ],
)
async def test_a_caller_the_directives_refuse_is_refused_after_an_allowed_caller_warmed_it(
    router, early_off, account, apps, query, refused_field
) -> None:
    """The lane is warm for an admin; anonymous callers, and (for users, which needs the
    users:read scope) a signed-in user without it, still get the refusal, never the lane."""
    admin = await sign_up(router, roles=("admin",), apps=apps)
    body = {"query": query.format(run=RUN)}
    before = await served_early(router)
    response = await both(router, early_off, body, admin.headers, times=4)
    assert "errors" not in response.json(), response.text
    warm = await served_early(router)
    assert warm - before >= 2
    refused: list[dict[str, str]] = [{}]
    if refused_field == "users":
        refused.append(account.headers)
    for headers in refused:
        response = await both(router, early_off, body, headers)
        assert response.status_code == 401, response.text
        codes = {e["extensions"]["code"] for e in response.json()["errors"]}
        assert codes == {"UNAUTHORIZED_FIELD_OR_TYPE"}, response.text
    assert await served_early(router) == warm


async def test_a_cost_that_depends_on_the_variables_is_checked_on_every_request(
    router, early_off, account
) -> None:
    """An operation whose cost reads a variable is never learnt: a large `first` sent after
    small ones is refused as always."""
    query = f"query Sized_{RUN}($n: Int!) {{ documents(first: $n) {{ nodes {{ id }} }} }}"
    before = await early_outcomes(router)
    await both(router, early_off, {"query": query, "variables": {"n": 2}}, account.headers, times=4)
    response = await both(
        router, early_off, {"query": query, "variables": {"n": 100_000}}, account.headers, times=2
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    after = await early_outcomes(router)
    assert after.get("learnt", 0) == before.get("learnt", 0)
    assert after.get("served", 0) == before.get("served", 0)


async def test_a_changed_document_text_or_operation_name_goes_the_normal_way(
    router, early_off, account, document
) -> None:
    query = f"query Changed_{RUN}($id: ID!) {{ document(id: $id) {{ id title }} }}"
    variables = {"id": document["id"]}
    await both(
        router, early_off, {"query": query, "variables": variables}, account.headers, times=3
    )
    before = await served_early(router)
    changed = [
        {"query": query.replace("title", "status"), "variables": variables},  # another selection
        {"query": query.replace("{ id title }", "{ id  title }"), "variables": variables},
        {"query": query, "variables": variables, "operationName": f"Changed_{RUN}"},
        {"query": query.replace("title }", "nope }"), "variables": variables},  # invalid
    ]
    for body in changed:
        await both(router, early_off, body, account.headers, times=1)
    assert await served_early(router) == before, (
        "a first request of another text was answered early"
    )


async def test_bad_variables_and_unexpected_parameters_get_the_normal_answers(
    router, early_off, account, document
) -> None:
    query = f"query Vars_{RUN}($id: ID!) {{ document(id: $id) {{ id title }} }}"
    await both(
        router, early_off, {"query": query, "variables": {"id": document["id"]}}, account.headers
    )
    before = await served_early(router)
    odd: list[dict[str, Any] | str] = [
        {"query": query, "variables": {"id": None}},
        {"query": query, "variables": {}},
        {"query": query, "variables": [document["id"]]},
        {"query": query, "variables": "not an object"},
        {"query": query, "variables": {"id": document["id"]}, "unexpected": True},
        '{"query": "not json at all',
        "[1, 2]",
    ]
    for body in odd:
        response = await both(router, early_off, body, account.headers, times=2)
        assert "errors" in response.json(), response.text
    # Extensions are accepted (and answered), but always the normal way.
    with_extensions = {"query": query, "variables": {"id": document["id"]}, "extensions": {"x": 1}}
    response = await both(router, early_off, with_extensions, account.headers, times=2)
    assert response.json()["data"]["document"]["id"] == document["id"]
    assert await served_early(router) == before


@pytest.mark.parametrize(
    ("variables", "answered_early"),
    [
        ({"after": None, "trashed": False, "owner": None}, True),
        ({"trashed": True}, True),
        ({"undeclared": "ignored"}, True),
        ({"after": 7}, False),  # a String refuses a number
        ({"owner": 7}, False),  # an ID converts an integer
        ({"owner": 7.5}, False),  # ...and refuses a float
        ({"trashed": "yes"}, False),
        ({"trashed": 1}, False),
    ],
)
async def test_variables_are_coerced_early_as_the_normal_path_coerces_them(
    router, early_off, account, variables, answered_early
) -> None:
    """The lane reads a variable of a built-in scalar as it comes when it is of that type,
    and leaves anything else to graphql-js: either way the same answer, errors included."""
    query = (  # arguments in the order the planner writes them: only then is it a lane's
        f"query Coerced_{RUN}($after: String, $trashed: Boolean, $owner: ID) {{ documents("
        "after: $after, filter: {ownerId: $owner, trashed: $trashed}, first: 2) { nodes { id } } }"
    )
    plain = {"query": query, "variables": {}}
    await both(router, early_off, plain, account.headers)  # learnt
    before = await served_early(router)
    await both(router, early_off, {"query": query, "variables": variables}, account.headers)
    assert (await served_early(router) > before) is answered_early


async def test_an_origin_outside_the_list_is_refused_and_an_allowed_one_gets_cors_headers(
    router, early_off, account, document
) -> None:
    body = {
        "query": f"query Origin_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}",
        "variables": {"id": document["id"]},
    }
    await both(router, early_off, body, account.headers)
    response = await both(
        router, early_off, body, {**account.headers, "origin": "https://evil.example"}, times=2
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "ORIGIN_NOT_ALLOWED"
    same_origin = router.base_url.netloc.decode()
    before = await served_early(router)
    before_server = await served_by_server_stage(router)
    response = await router.post(
        "/graphql", json=body, headers={**account.headers, "origin": f"http://{same_origin}"}
    )
    assert response.status_code == 200
    assert await served_early(router) == before + 1
    assert await served_by_server_stage(router) == before_server + 1
    assert response.headers["access-control-allow-origin"] == f"http://{same_origin}"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_a_browser_request_gets_the_cors_headers_of_the_normal_path(
    router, early_off, account, document
) -> None:
    """The server stage answers an allowed Origin with the CORS plugin's headers: the same
    names, values and order as the router without the lane, with and without the headers a
    browser sends that the plugin echoes."""
    body = {
        "query": f"query Cors_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}",
        "variables": {"id": document["id"]},
    }
    page = {"origin": "http://localhost:5173"}  # a development page: allowed on both routers
    await both(router, early_off, body, {**account.headers, **page})
    before = await served_by_server_stage(router)
    for echoed in (
        {},
        {"access-control-request-method": "POST"},
        {"access-control-request-headers": "x-foo, content-type"},
    ):
        response = await both(router, early_off, body, {**account.headers, **page, **echoed})
        assert response.headers["access-control-allow-origin"] == page["origin"]
    assert await served_by_server_stage(router) - before == 9


async def test_a_body_over_the_limit_is_refused(router, account, document) -> None:
    query = f"query Big_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}"
    for _ in range(3):
        await router.post(
            "/graphql",
            json={"query": query, "variables": {"id": document["id"]}},
            headers=account.headers,
        )
    padded = {"query": query, "variables": {"id": document["id"], "pad": "x" * (1024 * 1024 + 1)}}
    response = await router.post("/graphql", json=padded, headers=account.headers)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_rate_limit_counts_requests_answered_early(guarded, account) -> None:
    body = {"documentId": "document", "variables": {"id": str(uuid.uuid4())}}
    statuses = []
    for _ in range(GUARDED_RATE_LIMIT + 2):
        response = await guarded.post("/graphql", json=body, headers=account.headers)
        statuses.append(response.status_code)
    assert statuses == [200] * GUARDED_RATE_LIMIT + [429, 429]
    assert response.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS"
    assert int(response.headers["retry-after"]) >= 1
    assert await served_early(guarded) >= 1
    # Charged by the server stage itself, to the same bucket: exactly the limit got through.
    assert await served_by_server_stage(guarded) >= 1


async def test_trusted_documents_only_refuses_query_text_after_its_id_was_answered_early(
    guarded, account, apps
) -> None:
    other = await sign_up(guarded, apps=apps)  # a budget of its own
    by_id = {"documentId": "document", "variables": {"id": str(uuid.uuid4())}}
    before = await served_early(guarded)
    for _ in range(4):
        response = await guarded.post("/graphql", json=by_id, headers=account.headers)
        assert response.status_code == 200 and response.json() == {"data": {"document": None}}
    assert await served_early(guarded) - before >= 2
    text = {"query": TRUSTED_DOCUMENTS["document"], "variables": by_id["variables"]}
    for _ in range(3):
        response = await guarded.post("/graphql", json=text, headers=other.headers)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_DOCUMENT_REQUIRED"
    unknown = await guarded.post("/graphql", json={"documentId": "nope"}, headers=other.headers)
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_DOCUMENT_NOT_FOUND"


async def test_a_subgraph_that_stops_answering_times_out_as_before(flaky_content, account) -> None:
    """The early lane waits for the subgraph as long as the timeout once; the normal path it
    hands the request to answers SUBGRAPH_TIMEOUT at once, not after a second timeout."""
    url, relay = flaky_content
    body = {"query": f"query Flaky_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(3):
            response = await client.post("/graphql", json=body, headers=account.headers)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
        assert await served_early(client) >= 1
        relay.silent.set()
        try:
            before = await early_outcomes(client)
            for _ in range(2):
                started = time.monotonic()
                response = await client.post("/graphql", json=body, headers=account.headers)
                elapsed = time.monotonic() - started
                error = response.json()["errors"][0]
                assert error["extensions"] == {"code": "SUBGRAPH_TIMEOUT", "serviceName": "content"}
                assert 0.9 < elapsed < 1.9, elapsed
            after = await early_outcomes(client)
            assert after.get("handed_on", 0) - before.get("handed_on", 0) == 2
            assert after.get("served", 0) == before.get("served", 0)
        finally:
            relay.silent.clear()


async def test_it_can_be_turned_off(early_off, account) -> None:
    body = {"query": f"query Off_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    for _ in range(4):
        response = await early_off.post("/graphql", json=body, headers=account.headers)
        assert response.status_code == 200
    assert await early_outcomes(early_off) == {}
