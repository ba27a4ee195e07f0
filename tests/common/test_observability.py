"""subgraphs.common.observability, in process: request ids, log lines, metrics."""

from __future__ import annotations

import gc
import io
import json
import logging
import re
import uuid

import httpx
import pytest
from conftest import BY_NAME, client_for
from prometheus_client.parser import text_string_to_metric_families
from router.conftest import TraceCollector

from subgraphs.common.observability import (
    TEXT_LOG_FORMAT,
    JsonLogFormatter,
    RequestIdFilter,
    request_id,
    request_id_from,
    time_garbage_collections,
)


@pytest.mark.parametrize("given", ["abc-123", "trace.id:7", "A" * 128])
def test_a_sane_client_request_id_is_kept(given: str) -> None:
    assert request_id_from(given) == given


@pytest.mark.parametrize("given", [None, "", "with space", "x" * 129, "new\nline", "é"])
def test_anything_else_gets_a_new_id(given: str | None) -> None:
    made = request_id_from(given)
    assert made != given and len(made) == 36


def test_a_new_id_is_a_random_uuid_unlike_the_others() -> None:
    made = [request_id_from(None) for _ in range(1000)]
    assert len(set(made)) == len(made)
    for text in made[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test-observability-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_text_lines_carry_the_request_id() -> None:
    logger, stream = capture(logging.Formatter(TEXT_LOG_FORMAT))
    logger.info("outside")
    token = request_id.set("req-1")
    try:
        logger.info("inside")
    finally:
        request_id.reset(token)
    outside, inside = stream.getvalue().splitlines()
    assert "[-] outside" in outside
    assert "[req-1] inside" in inside


def test_json_lines_are_one_object_each() -> None:
    logger, stream = capture(JsonLogFormatter("content"))
    token = request_id.set("req-2")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed %s", "here")
    finally:
        request_id.reset(token)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == "req-2"
    assert entry["service"] == "content"
    assert entry["level"] == "error"
    assert entry["message"] == "failed here"
    assert "ValueError: boom" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


def test_json_lines_keep_any_text() -> None:
    logger, stream = capture(JsonLogFormatter("content"))
    for text in ("ünïcode ✓ \x00", "lone \ud800 surrogate", 'quote " and \n newline'):
        logger.info("%s", text)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == [
        "ünïcode ✓ \x00",
        "lone \ud800 surrogate",
        'quote " and \n newline',
    ]


async def test_the_response_returns_the_request_id(clients) -> None:
    client = clients["content"]
    given = await client.get("/health", headers={"x-request-id": "given-1"})
    assert given.headers["x-request-id"] == "given-1"
    made = await client.get("/health")
    assert len(made.headers["x-request-id"]) == 36


async def test_metrics_count_requests_by_route_template(clients) -> None:
    client = clients["content"]
    missing = "00000000-0000-0000-0000-000000000000"
    await client.get(f"/api/v1/documents/{missing}")
    text = (await client.get("/metrics")).text
    # Other tests may have answered the same route otherwise: any sample of (route, status).
    assert ("/api/v1/documents/{document_id}", "404") in routes_answered(text, "content")
    assert missing not in text


async def test_a_subgraph_exports_traces_when_an_otlp_endpoint_is_set(monkeypatch) -> None:
    from opentelemetry import trace

    collector = TraceCollector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    app = BY_NAME["content"].app()
    try:
        async with client_for(app) as client:
            response = await client.get(
                "/health",
                # The router's trace context, continued by the subgraph's span.
                headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
            )
        assert response.status_code == 200
    finally:
        # The provider is process-wide: flush it, then shut it down so that nothing else in
        # this test run exports (or waits at exit for a collector that is gone).
        provider = trace.get_tracer_provider()
        provider.force_flush()  # type: ignore[attr-defined]
        provider.shutdown()  # type: ignore[attr-defined]
        await app.state.redis.close()
        await app.state.engine.dispose()
        collector.close()
    assert "/v1/traces" in collector.paths


async def test_graphql_served_ahead_of_fastapi_keeps_request_ids_and_metrics(clients) -> None:
    """/graphql skips FastAPI's routing (common/app.py, SubgraphApp) but not observability."""
    client = clients["content"]
    answered = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "gql-1"}
    )
    assert answered.json() == {"data": {"__typename": "Query"}}
    assert answered.headers["x-request-id"] == "gql-1"
    text = (await client.get("/metrics")).text
    assert ("/graphql", "200") in routes_answered(text, "content")


async def test_an_unexpected_graphql_crash_is_a_counted_500_not_a_dropped_connection(
    apps, monkeypatch
) -> None:
    """/graphql is served outside FastAPI's ServerErrorMiddleware: its observability is the
    last resort, answering a plain 500 with the request id before the error is raised for
    the server's log."""
    from subgraphs.common.app import HubGraphQL

    async def crash(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(HubGraphQL, "__call__", crash)
    transport = httpx.ASGITransport(app=apps["content"], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        crashed = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "crash-1"}
        )
        assert (crashed.status_code, crashed.text) == (500, "Internal Server Error")
        assert crashed.headers["x-request-id"] == "crash-1"
        assert "a bug" not in crashed.text
        text = (await client.get("/metrics")).text
    assert ("/graphql", "500") in routes_answered(text, "content")


def routes_answered(metrics: str, service: str) -> set[tuple[str, str]]:
    """(route template, status) of every request counted in `hub_http_requests_total`."""
    return {
        (sample.labels["route"], sample.labels["status"])
        for family in text_string_to_metric_families(metrics)
        if family.name == "hub_http_requests"
        for sample in family.samples
        if sample.labels.get("service") == service
    }


async def test_garbage_collection_pauses_are_timed(clients) -> None:
    """`hub_gc_pause_seconds`: how long each collection stopped the process (served apps)."""
    installed = list(gc.callbacks)
    try:
        time_garbage_collections("content")
        time_garbage_collections("content")  # once per process, however often it is asked
        gc.collect()
        assert sum(1 for c in gc.callbacks if getattr(c, "hub_gc_timer", False)) == 1
    finally:
        gc.callbacks[:] = installed  # see HubSettings.gc_pause_metric
    text = (await clients["content"].get("/metrics")).text
    full = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == "hub_gc_pause_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels["generation"] == "2"
    ]
    assert full and full[0].value >= 1
