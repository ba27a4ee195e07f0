"""Workflow instances, linked to the document they are about."""

from __future__ import annotations

import uuid

from conftest import graphql

START = (
    "mutation($i: StartWorkflowInput!) { startWorkflow(input: $i) { id state document { id } } }"
)


async def test_a_workflow_starts_about_a_document(clients) -> None:
    document = str(uuid.uuid4())
    started = await graphql(
        clients["workflow"], START, {"i": {"definitionKey": "review", "documentId": document}}
    )
    instance = started["data"]["startWorkflow"]
    assert instance["state"] == "started" and instance["document"] == {"id": document}
    rest = await clients["workflow"].get(f"/api/v1/workflows/instances/{instance['id']}")
    assert rest.json()["subject_id"] == document


async def test_definition_key_and_subject_type_are_checked(clients) -> None:
    bad = await graphql(
        clients["workflow"],
        START,
        {"i": {"definitionKey": "Bad Key!", "documentId": str(uuid.uuid4())}},
    )
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "definitionKey"}
    rest = await clients["workflow"].post(
        "/api/v1/workflows/instances",
        json={
            "definition_key": "review",
            "subject_type": "Invoice",
            "subject_id": str(uuid.uuid4()),
        },
    )
    assert rest.status_code == 422
