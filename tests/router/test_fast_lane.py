"""The single-subgraph fast lane (router/plugins/fast-lane.ts, HUB_ROUTER_FAST_LANE).

A query planned as one fetch to one subgraph is forwarded to that subgraph without the
gateway's plan executor. The session stack's router has the lane on (the default); a
second router in front of the same subgraphs has it off. Every request here is sent to
both, at least twice each (a document's first run is always the normal path: it is how the
lane learns the plan), and the answers must be the same: status, body, refusals. The lane
router's `hub_router_fast_lane_total` shows whether the lane answered or handed back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from conftest import Account, sign_up
from devstack import Stack
from router.conftest import BlackHole, create_document, lane_outcomes, start_router

RUN = uuid.uuid4().hex[:8]  # document texts of this run only: no other test warmed them


@pytest.fixture(scope="session")
def lane_off_router(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("lane-off-router")
    url, supervisor = start_router(stack, directory, "lane-off", {"HUB_ROUTER_FAST_LANE": "off"})
    try:
        supervisor.wait_ready(90, progress=False)
        yield url
    finally:
        supervisor.stop()


@pytest.fixture(scope="session")
def silent_workflow_routers(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Two routers (lane on, lane off) reaching workflow at a black hole, 1-second timeout."""
    directory = tmp_path_factory.mktemp("silent-workflow-routers")
    black_hole = BlackHole()
    env = {
        "HUB_ROUTER_SUBGRAPH_TIMEOUT": "1",
        "HUB_WORKFLOW_URL": f"http://127.0.0.1:{black_hole.port}",
    }
    routers = {
        lane: start_router(
            stack, directory, f"silent-{lane}", {**env, "HUB_ROUTER_FAST_LANE": lane}
        )
        for lane in ("on", "off")
    }
    try:
        for _, supervisor in routers.values():
            supervisor.wait_ready(90, progress=False)
        yield {lane: url for lane, (url, _) in routers.items()}
    finally:
        for _, supervisor in routers.values():
            supervisor.stop()
        black_hole.close()


@pytest.fixture
async def normal(lane_off_router: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=lane_off_router, timeout=30) as client:
        yield client


async def served_and_handed_back(router: httpx.AsyncClient) -> tuple[float, float]:
    outcomes = await lane_outcomes(router)
    served = outcomes.get("served", 0.0)
    return served, sum(outcomes.values()) - served


async def both(
    router: httpx.AsyncClient,
    normal: httpx.AsyncClient,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    times: int = 3,
) -> httpx.Response:
    """Send `body` to both routers `times` times; every answer must be the same."""
    first: httpx.Response | None = None
    for _ in range(times):
        lane = await router.post("/graphql", json=body, headers=headers or {})
        plain = await normal.post("/graphql", json=body, headers=headers or {})
        assert lane.status_code == plain.status_code, (lane.text, plain.text)
        assert lane.json() == plain.json()
        assert lane.headers["content-type"] == plain.headers["content-type"]
        first = first or lane
    assert first is not None
    return first


@pytest.fixture
async def document(router: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    return await create_document(router, account, f"Fast lane {RUN}")


@pytest.mark.parametrize(
    "query",
    [
        "query Doc_{run}($id: ID!) {{ document(id: $id) {{ id title status owner {{ id }} }} }}",
        "query Alias_{run}($id: ID!) {{ d: document(id: $id) {{ name: title id }} }}",
        "query List_{run} {{ documents(first: 3) {{ nodes {{ id title status }} }} }}",
        'query Missing_{run} {{ document(id: "00000000-0000-0000-0000-000000000000") {{ id }} }}',
    ],
)
async def test_single_subgraph_queries_are_answered_as_the_normal_path_answers(
    router, normal, account, document, query
) -> None:
    body = {"query": query.format(run=RUN), "variables": {"id": document["id"]}}
    before = await served_and_handed_back(router)
    response = await both(router, normal, body, account.headers)
    after = await served_and_handed_back(router)
    assert "errors" not in response.json(), response.text
    assert after[0] - before[0] >= 2, "the lane answered none of the repeated requests"


@pytest.mark.parametrize("first", [2, 2.0, 2.5, 2**31, -(2**31) - 1, "2", True, None, {"n": 2}])
async def test_an_int_variable_is_coerced_as_the_normal_path_coerces_it(
    router, normal, account, first
) -> None:
    query = f"query Sized_{RUN}($first: Int) {{ documents(first: $first) {{ nodes {{ id }} }} }}"
    await both(router, normal, {"query": query, "variables": {"first": 1}}, account.headers)
    served = (await served_and_handed_back(router))[0]
    await both(router, normal, {"query": query, "variables": {"first": first}}, account.headers)
    if first in (2, 2.0) and first is not True:
        assert (await served_and_handed_back(router))[0] > served


async def test_arguments_in_any_order_take_the_lane(router, normal, account) -> None:
    """The planner writes a field's arguments (and an input object's fields) in name order;
    the client's order means the same."""
    query = (
        f"query Ordered_{RUN}($after: String) {{ documents(first: 2, after: $after,"
        " filter: {trashed: false, ownerId: null}) { nodes { id title } } }"
    )
    before = await served_and_handed_back(router)
    response = await both(router, normal, {"query": query, "variables": {}}, account.headers)
    after = await served_and_handed_back(router)
    assert "errors" not in response.json(), response.text
    assert after[0] - before[0] >= 2, "the lane answered none of the repeated requests"


async def test_the_answer_is_the_same_bytes(router, normal, account, document) -> None:
    body = {
        "query": f"query Bytes_{RUN}($id: ID!) {{ document(id: $id) {{ id title status }} }}",
        "variables": {"id": document["id"]},
    }
    for _ in range(3):
        lane = await router.post("/graphql", json=body, headers=account.headers)
        plain = await normal.post("/graphql", json=body, headers=account.headers)
        assert lane.content == plain.content


async def test_a_subgraph_error_is_handed_back_to_the_normal_path(router, normal, account) -> None:
    body = {
        "query": f"query Bad_{RUN}($id: ID!) {{ document(id: $id) {{ id }} }}",
        "variables": {"id": "not-an-id"},
    }
    before = await lane_outcomes(router)
    response = await both(router, normal, body, account.headers)
    after = await lane_outcomes(router)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert after.get("fallback_errors", 0) - before.get("fallback_errors", 0) >= 2
    assert after.get("served", 0) == before.get("served", 0)


async def test_queries_the_lane_does_not_take_are_unchanged(
    router, normal, account, document
) -> None:
    cross = {
        "query": f"query Cross_{RUN}($id: ID!) "
        "{ document(id: $id) { title owner { email } workflows { state } } }",
        "variables": {"id": document["id"]},
    }
    fragment = {
        "query": f"query Frag_{RUN}($id: ID!) {{ document(id: $id) {{ ...F }} }} "
        "fragment F on Document { id title }",
        "variables": {"id": document["id"]},
    }
    directive = {
        "query": f"query Skip_{RUN}($id: ID!, $s: Boolean!) "
        "{ document(id: $id) { id title @skip(if: $s) } }",
        "variables": {"id": document["id"], "s": True},
    }
    typename = {
        "query": f"query Type_{RUN}($id: ID!) {{ document(id: $id) {{ __typename id }} }}",
        "variables": {"id": document["id"]},
    }
    before = await served_and_handed_back(router)
    for body in (cross, fragment, directive, typename):
        await both(router, normal, body, account.headers)
    after = await served_and_handed_back(router)
    assert after[0] == before[0], "the lane answered a query it must leave alone"


async def test_a_mutation_never_takes_the_lane(router, normal, account) -> None:
    before = await served_and_handed_back(router)
    for client in (router, normal):
        for _ in range(2):
            response = await client.post(
                "/graphql",
                json={"query": f"mutation Mark_{RUN} {{ markAllNotificationsRead }}"},
                headers=account.headers,
            )
            assert response.status_code == 200, response.text
            assert isinstance(response.json()["data"]["markAllNotificationsRead"], int)
    assert (await served_and_handed_back(router))[0] == before[0]


async def test_fields_refused_by_authorization_are_refused_the_same(router, normal) -> None:
    anonymous = {"query": f"query Prefs_{RUN} {{ notificationPreferences {{ __typename }} }}"}
    response = await both(router, normal, anonymous)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED_FIELD_OR_TYPE"
    only_public = {"query": f"query Pub_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    await both(router, normal, only_public)


async def test_a_bad_token_is_refused_the_same(router, normal, account) -> None:
    body = {"query": f"query Doc_{RUN} {{ documents(first: 1) {{ nodes {{ id }} }} }}"}
    await both(router, normal, body, account.headers)  # the lane is warm for this document
    forged = {"authorization": account.headers["authorization"][:-6] + "AAAAAA"}
    response = await both(router, normal, body, forged)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_request_id_and_metrics_of_a_lane_request(
    stack, router, account, document
) -> None:
    body = {
        "query": f"query Traced_{RUN}($id: ID!) {{ document(id: $id) {{ id title }} }}",
        "variables": {"id": document["id"]},
    }
    await router.post("/graphql", json=body, headers=account.headers)  # learns the plan
    before = await lane_outcomes(router)
    request_id = f"lane-{uuid.uuid4().hex}"
    response = await router.post(
        "/graphql", json=body, headers={"x-request-id": request_id, **account.headers}
    )
    assert response.headers["x-request-id"] == request_id
    assert (await lane_outcomes(router)).get("served", 0) == before.get("served", 0) + 1
    lines = [
        line
        for line in (stack.log_dir / "content.log").read_text().splitlines()
        if request_id in line
    ]
    assert lines and all(f"[{request_id}]" in line for line in lines)
    metrics = (await router.get("/metrics")).text
    for kept in (
        "graphql_yoga_http_duration_bucket",
        "graphql_envelop_request",
        "graphql_gateway_subgraph_execute_duration_bucket",
        "graphql_gateway_fetch_duration_bucket",
    ):
        assert kept in metrics, kept


async def test_a_silent_subgraph_times_out_as_before(silent_workflow_routers) -> None:
    """The lane waits for the subgraph as long as the timeout once; the normal path it
    hands over to then answers SUBGRAPH_TIMEOUT at once, not after a second timeout."""
    body = {"query": f"query Silent_{RUN} {{ workflowInstances(first: 1) {{ nodes {{ id }} }} }}"}
    answers: dict[str, Any] = {}
    for lane, url in silent_workflow_routers.items():
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(3):
                started = time.monotonic()
                response = await client.post("/graphql", json=body)
                elapsed = time.monotonic() - started
                error = response.json()["errors"][0]
                assert error["extensions"] == {
                    "code": "SUBGRAPH_TIMEOUT",
                    "serviceName": "workflow",
                }
                assert 0.9 < elapsed < 1.9, elapsed
                answers.setdefault(lane, response.json())
            if lane == "on":
                assert (await lane_outcomes(client)).get("fallback_timeout", 0) >= 2
    assert answers["on"] == answers["off"]


@pytest.mark.parametrize(
    ("query", "refused_field"),
    [
        (
            "query Audit_{run} {{ documents(first: 1) {{ nodes {{ id }} }} "
            "auditTrail(first: 1) {{ nodes {{ id action }} }} }}",
            "auditTrail",
        ),
        ("query Me_{run} {{ me {{ id email }} }}", "me"),
        ("query Users_{run} {{ users(first: 1) {{ nodes {{ id }} }} }}", "users"),
    ],
)
async def test_a_caller_the_directives_refuse_never_gets_the_lane_of_one_they_allow(
    router, normal, account, apps, query, refused_field
) -> None:
    """@authenticated / @requiresScopes: the lane is warm for a caller allowed the field
    (the document's plan is a single fetch); a caller refused it afterwards still gets the
    normal path's refusal, and the lane answers none of their requests."""
    allowed = await sign_up(router, roles=("admin",), apps=apps)
    refused_headers: list[dict[str, str]] = [{}]  # anonymous
    if refused_field == "users":
        refused_headers.append(account.headers)  # signed in, without users:read
    body = {"query": query.format(run=RUN)}
    before = await served_and_handed_back(router)
    response = await both(router, normal, body, allowed.headers)
    assert "errors" not in response.json(), response.text
    warm = await served_and_handed_back(router)
    assert warm[0] - before[0] >= 2
    for headers in refused_headers:
        response = await both(router, normal, body, headers)
        assert response.status_code == 401, response.text
        codes = {e["extensions"]["code"] for e in response.json()["errors"]}
        assert codes == {"UNAUTHORIZED_FIELD_OR_TYPE"}, response.text
    assert (await served_and_handed_back(router))[0] == warm[0]
