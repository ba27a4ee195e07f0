"""Documents as content owns them, through GraphQL and REST alike."""

from __future__ import annotations

import uuid

from conftest import graphql

CREATE = (
    "mutation($i: CreateDocumentInput!) { createDocument(input: $i) { id title owner { id } } }"
)


async def test_a_document_needs_only_a_title_and_an_owner(clients) -> None:
    owner = str(uuid.uuid4())
    created = await graphql(clients["content"], CREATE, {"i": {"title": " RC ", "ownerId": owner}})
    document = created["data"]["createDocument"]
    assert document["title"] == "RC" and document["owner"] == {"id": owner}

    rest = await clients["content"].get(f"/api/v1/documents/{document['id']}")
    assert rest.status_code == 200
    assert rest.json()["owner_id"] == owner


async def test_bad_title_or_owner_is_refused_without_a_row(clients) -> None:
    owner = str(uuid.uuid4())
    blank = await graphql(clients["content"], CREATE, {"i": {"title": "  ", "ownerId": owner}})
    assert blank["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}
    bad_owner = await graphql(clients["content"], CREATE, {"i": {"title": "x", "ownerId": "me"}})
    assert bad_owner["errors"][0]["extensions"]["field"] == "ownerId"
    listed = await clients["content"].get("/api/v1/documents", params={"owner_id": owner})
    assert listed.json()["items"] == []


async def test_rest_lists_an_owners_documents_with_a_cursor(clients) -> None:
    owner = str(uuid.uuid4())
    for title in ("a", "b", "c"):
        response = await clients["content"].post(
            "/api/v1/documents", json={"title": title, "owner_id": owner}
        )
        assert response.status_code == 201
    first = (
        await clients["content"].get("/api/v1/documents", params={"owner_id": owner, "limit": 2})
    ).json()
    assert [d["title"] for d in first["items"]] == ["c", "b"]
    rest = (
        await clients["content"].get(
            "/api/v1/documents",
            params={"owner_id": owner, "limit": 2, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [d["title"] for d in rest["items"]] == ["a"] and rest["next_cursor"] is None


async def test_a_nul_character_is_the_callers_mistake_not_a_server_error(clients) -> None:
    # PostgreSQL text cannot hold U+0000; the database layer refuses it for every service.
    owner = str(uuid.uuid4())
    created = await graphql(clients["content"], CREATE, {"i": {"title": "a\x00", "ownerId": owner}})
    assert created["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = await clients["content"].post(
        "/api/v1/documents", json={"title": "a\x00", "owner_id": owner}
    )
    assert response.status_code == 422 and response.json()["code"] == "BAD_USER_INPUT"
