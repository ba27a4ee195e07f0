"""The contract every subgraph keeps, written once and run against all four."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, client_for, graphql, sign_up

from subgraphs.common.subgraph import Subgraph


async def test_health_says_alive(subgraph: Subgraph, clients) -> None:
    response = await clients[subgraph.name].get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": subgraph.name}


async def test_ready_when_database_and_redis_answer(subgraph: Subgraph, clients) -> None:
    response = await clients[subgraph.name].get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize("broken", ["database", "redis"])
async def test_not_ready_names_the_dependency_that_fails(subgraph: Subgraph, broken: str) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    override: dict[str, Any] = (
        {"database_url": "postgresql://postgres@127.0.0.1:1/nothing"}
        if broken == "database"
        else {"redis_url": "redis://127.0.0.1:1/0"}
    )
    app = subgraph.app(subgraph.settings_class(**override))
    try:
        async with client_for(app) as client:
            response = await client.get("/ready")
    finally:
        await app.state.redis.close()
        await app.state.engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][broken] != "ok"
    other = "redis" if broken == "database" else "database"
    assert body["checks"][other] == "ok"


async def test_service_sdl_is_the_committed_schema_file(subgraph: Subgraph, clients) -> None:
    result = await graphql(clients[subgraph.name], "{ _service { sdl } }")
    committed = (ROOT / "schema" / f"{subgraph.name}.graphql").read_text()
    assert result["data"]["_service"]["sdl"].rstrip() == committed.rstrip()
    assert '@link(url: "https://specs.apollo.dev/federation/v2.9"' in committed


async def test_graphiql_and_openapi_docs_are_served(subgraph: Subgraph, clients) -> None:
    client = clients[subgraph.name]
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    docs = await client.get("/docs")
    assert docs.status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert any(path.startswith("/api/v1/") for path in spec["paths"])


async def test_graphql_errors_carry_a_code(subgraph: Subgraph, clients) -> None:
    client = clients[subgraph.name]
    unknown = await graphql(client, "{ noSuchField }")
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    syntax = await graphql(client, "{ unclosed ")
    assert syntax["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    entity = "WorkflowInstance" if subgraph.name == "workflow" else None
    typename = entity or {"identity": "User", "content": "Document"}.get(subgraph.name, "User")
    bad_id = await graphql(
        client,
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
        {"r": [{"__typename": typename, "id": "not-a-uuid"}]},
    )
    if subgraph.name in ("identity", "content", "workflow"):
        assert bad_id["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_rest_errors_are_problem_json(subgraph: Subgraph, apps, clients) -> None:
    client = clients[subgraph.name]
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    spec = (await client.get("/openapi.json")).json()
    item_path = next(
        path
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1/") and path.endswith("_id}") and "get" in operations
    )
    malformed = await client.get(item_path.split("{")[0] + "not-a-uuid", headers=admin.headers)
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["code"] == "BAD_USER_INPUT"

    missing = await client.get(
        item_path.split("{")[0] + "00000000-0000-0000-0000-000000000000", headers=admin.headers
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404

    nowhere = await client.get("/api/v1/no-such-route")
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"] == "application/problem+json"


def test_subgraphs_never_import_each_other() -> None:
    names = ("identity", "content", "communication", "workflow")
    for name in names:
        for path in (ROOT / "subgraphs" / name).rglob("*.py"):
            source = Path(path).read_text()
            for other in names:
                if other != name:
                    assert f"subgraphs.{other}" not in source, f"{path} imports {other}"
