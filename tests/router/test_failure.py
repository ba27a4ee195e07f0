"""One subgraph down: the rest of the graph keeps answering, and the error names the missing one.

Stops workflow in the session stack and restarts it before the test ends.
"""

from __future__ import annotations

import pytest
from integration.conftest import execute


@pytest.fixture
def workflow_stopped(stack):
    stack.stop_service("workflow")
    try:
        yield
    finally:
        stack.restart_service("workflow")


async def test_with_workflow_stopped_the_others_still_answer(
    stack, router, account, workflow_stopped
) -> None:
    document = (
        await router.post(
            "/api/v1/documents",
            json={"title": "Survivor", "owner_id": account.id},
            headers=account.headers,
        )
    ).json()
    variables = {"id": document["id"]}

    # Only content: unaffected.
    data = await execute(
        router, "query($id: ID!) { document(id: $id) { title } }", variables, account.headers
    )
    assert data == {"document": {"title": "Survivor"}}

    # Content and workflow: content's data, and an error naming workflow.
    response = await router.post(
        "/graphql",
        json={
            "query": """query($id: ID!) { document(id: $id) { title }
                workflowInstance(id: $id) { state } }""",
            "variables": variables,
        },
        headers=account.headers,
    )
    body = response.json()
    assert body["data"] == {"document": {"title": "Survivor"}, "workflowInstance": None}
    (error,) = body["errors"]
    assert error["path"] == ["workflowInstance"]
    assert error["extensions"] == {"code": "SUBGRAPH_UNAVAILABLE", "serviceName": "workflow"}
    assert "workflow" in error["message"]

    # REST to the stopped subgraph: a problem naming it.
    rest = await router.get("/api/v1/workflows/instances")
    assert rest.status_code == 502
    assert rest.json()["code"] == "SUBGRAPH_UNAVAILABLE"

    readiness = await router.get("/readiness")
    assert readiness.status_code == 200  # still serving the other subgraphs
    report = readiness.json()
    assert report["status"] == "degraded"
    assert report["subgraphs"]["workflow"].startswith("unreachable")
    assert report["subgraphs"]["content"] == "ready"


async def test_readiness_is_ready_with_every_subgraph_up(router) -> None:
    response = await router.get("/readiness")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "supergraph": "loaded",
        "subgraphs": dict.fromkeys(("communication", "content", "identity", "workflow"), "ready"),
    }
