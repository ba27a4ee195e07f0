"""Request ids from the router to every subgraph and back; metrics; production logs."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx
import pytest
from devstack import SUBGRAPHS
from prometheus_client.parser import text_string_to_metric_families

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

CROSS_SUBGRAPH_QUERY = """query($id: ID!) { document(id: $id) {
    title workflows { state } owner { id notifications { nodes { title } } } } }"""


def log_lines_with(stack, service: str, needle: str) -> list[str]:
    return [
        line
        for line in (stack.log_dir / f"{service}.log").read_text().splitlines()
        if needle in line
    ]


async def test_the_router_makes_a_request_id_and_returns_it(router) -> None:
    response = await router.post("/graphql", json={"query": "{ __typename }"})
    assert UUID.match(response.headers["x-request-id"])


async def test_a_client_request_id_is_kept_and_an_unsafe_one_replaced(router) -> None:
    kept = await router.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "client-id.42"}
    )
    assert kept.headers["x-request-id"] == "client-id.42"
    unsafe = "x" * 200
    replaced = await router.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": unsafe}
    )
    assert UUID.match(replaced.headers["x-request-id"])


async def test_the_request_id_reaches_every_subgraph_a_query_touches(
    stack, router, account
) -> None:
    document = (
        await router.post(
            "/api/v1/documents",
            json={"title": "Traced", "owner_id": account.id},
            headers=account.headers,
        )
    ).json()
    request_id = f"trace-{uuid.uuid4().hex}"
    response = await router.post(
        "/graphql",
        json={"query": CROSS_SUBGRAPH_QUERY, "variables": {"id": document["id"]}},
        headers={"x-request-id": request_id, **account.headers},
    )
    assert response.headers["x-request-id"] == request_id
    assert response.json()["data"]["document"]["title"] == "Traced"
    for service in ("content", "workflow", "communication"):
        lines = log_lines_with(stack, service, request_id)
        assert lines, f"{service} logged nothing with the request id"
        assert all(f"[{request_id}]" in line for line in lines)


async def test_rest_requests_carry_the_request_id_too(stack, router) -> None:
    response = await router.get("/api/v1/documents", headers={"x-request-id": "rest-id-7"})
    assert response.headers["x-request-id"] == "rest-id-7"
    assert log_lines_with(stack, "content", "[rest-id-7]")


async def test_every_subgraph_log_line_names_its_request(stack) -> None:
    """Access lines and application lines alike; "-" outside any request."""
    lines = (stack.log_dir / "content.log").read_text().splitlines()
    access = [line for line in lines if '"GET /api/v1/documents' in line]
    assert access and all(re.search(r"\[[^\]]+\]", line) for line in access)


async def test_the_router_serves_prometheus_metrics(router) -> None:
    """The standard set (HUB_ROUTER_METRICS): what operating it needs, not every phase; and
    the process's own: memory, CPU, Node's heap and collections, the heap it retains."""
    await router.post("/graphql", json={"query": "{ documents(first: 1) { nodes { id } } }"})
    response = await router.get("/metrics")
    assert response.status_code == 200
    for kept in (
        "graphql_yoga_http_duration_bucket",
        "graphql_envelop_request",
        "graphql_gateway_subgraph_execute_duration_bucket",
        "graphql_gateway_fetch_duration_bucket",
    ):
        assert kept in response.text, kept
    for left_out in ("graphql_envelop_phase_parse", "graphql_envelop_request_time_summary"):
        assert left_out not in response.text, left_out
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    rss, heap = values["process_resident_memory_bytes"], values["nodejs_heap_size_used_bytes"]
    assert values["process_cpu_seconds_total"] > 0 and 0 < heap < rss
    # The heap left by the latest full collection (or at startup): what the router keeps.
    assert 0 < values["hub_router_heap_retained_bytes"] < rss
    assert "nodejs_gc_duration_seconds_count" in values


@pytest.mark.parametrize("service", SUBGRAPHS)
async def test_each_subgraph_serves_prometheus_metrics(stack, service) -> None:
    async with httpx.AsyncClient(base_url=stack.urls[service]) as client:
        await client.get("/health")
        response = await client.get("/metrics")
    assert response.status_code == 200
    wanted = {"service": service, "method": "GET", "route": "/health", "status": "200"}
    assert any(
        sample.labels == wanted and sample.value >= 1
        for family in text_string_to_metric_families(response.text)
        if family.name == "hub_http_requests"
        for sample in family.samples
    )


async def test_production_router_logs_are_json_lines_with_the_request_id(
    production, production_router
) -> None:
    response = await production.get(
        "/api/v1/workflows/instances", headers={"x-request-id": "json-log-1"}
    )
    assert response.status_code == 504  # workflow is a black hole for this router
    entries = []
    for line in production_router.log_file.read_text().splitlines():
        if "json-log-1" in line:
            entries.append(json.loads(line))
    assert entries and all(entry["requestId"] == "json-log-1" for entry in entries)


async def test_a_task_logs_under_the_request_id_that_queued_it(stack, router) -> None:
    request_id = f"task-{uuid.uuid4().hex}"
    email, password = f"tasks-{uuid.uuid4().hex[:8]}@example.com", "a sturdy passphrase 42"
    registered = await router.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": "Tasks"},
    )
    login = await router.post("/api/v1/auth/login", json={"email": email, "password": password})
    response = await router.post(
        "/graphql",
        json={  # a user may notify themselves
            "query": "mutation($n: SendNotificationInput!) { sendNotification(input: $n) { id } }",
            "variables": {"n": {"recipientId": registered.json()["id"], "title": "Queued"}},
        },
        headers={
            "x-request-id": request_id,
            "authorization": f"Bearer {login.json()['access_token']}",
        },
    )
    assert "errors" not in response.json(), response.json()
    for _ in range(100):
        if log_lines_with(stack, "worker", f"[{request_id}]"):
            break
        await asyncio.sleep(0.1)
    assert log_lines_with(stack, "worker", f"[{request_id}]"), "the worker never logged the id"


async def test_the_router_exports_traces_when_an_otlp_endpoint_is_set(
    production, production_router
) -> None:
    await production.post("/graphql", json={"documentId": "documents"})
    for _ in range(50):
        if "/v1/traces" in production_router.collector.paths:
            break
        await asyncio.sleep(0.1)
    assert "/v1/traces" in production_router.collector.paths
