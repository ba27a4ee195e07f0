"""Documents: creation by a signed-in owner, types and their metadata schemas, optimistic
concurrency, trash, restore and purge — through GraphQL and REST alike."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import graphql
from content.conftest import DOCUMENT_FIELDS, create_document, gql, upload

import subgraphs.content.document_types as document_types
from subgraphs.content.service.resources import Resources

CREATE = (
    "mutation($i: CreateDocumentInput!) { createDocument(input: $i) { __typename"
    " ... on InvalidInput { message code field }"
    " ... on Document { " + DOCUMENT_FIELDS + " } } }"
)
UPDATE = (
    "mutation($i: UpdateDocumentInput!) { updateDocument(input: $i) { __typename"
    " ... on Document { id title version tags status metadata }"
    " ... on VersionConflict { currentVersion message }"
    " ... on MutationError { code message } } }"
)
PROCUREMENT = Path("subgraphs/content/document_types/procurement.yaml")


async def test_a_document_needs_only_a_title_and_is_owned_by_its_creator(clients, alice) -> None:
    created = await gql(clients["content"], CREATE, {"i": {"title": " RC "}}, alice)
    document = created["data"]["createDocument"]
    assert document["__typename"] == "Document"
    assert document["title"] == "RC" and document["owner"] == {"id": alice.id}
    assert document["type"] == "general" and document["status"] == "DRAFT"
    assert document["version"] == 1 and document["tags"] == [] and document["metadata"] == {}

    rest = await clients["content"].get(
        f"/api/v1/documents/{document['id']}", headers=alice.headers
    )
    assert rest.status_code == 200
    assert rest.json()["owner_id"] == alice.id and rest.json()["latest_version"] is None


async def test_anonymous_callers_cannot_create(clients) -> None:
    created = await graphql(clients["content"], CREATE, {"i": {"title": "x"}})
    assert created["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    rest = await clients["content"].post("/api/v1/documents", json={"title": "x"})
    assert rest.status_code == 401
    assert rest.headers["content-type"] == "application/problem+json"


async def test_bad_input_is_a_typed_error_and_leaves_no_row(clients, alice) -> None:
    for title in ("  ", "a\x00"):
        result = await gql(clients["content"], CREATE, {"i": {"title": title}}, alice)
        error = result["data"]["createDocument"]
        assert error == {**error, "__typename": "InvalidInput", "code": "BAD_USER_INPUT"}
        assert error["field"] == "title"
    unknown = await gql(clients["content"], CREATE, {"i": {"title": "x", "type": "rc"}}, alice)
    assert unknown["data"]["createDocument"]["field"] == "type"
    mine = await clients["content"].get("/api/v1/documents", headers=alice.headers)
    assert mine.json()["items"] == []


async def test_tags_are_normalised_and_metadata_kept(clients, alice) -> None:
    document = await create_document(
        clients["content"],
        alice,
        "Tagged",
        tags=[" Urgent", "urgent", "Lot-2"],
        metadata={"reference": "2026-001", "amount": 12.5},
        description="Some words",
    )
    assert document["tags"] == ["urgent", "lot-2"]
    assert document["metadata"] == {"reference": "2026-001", "amount": 12.5}


@pytest.fixture
def procurement_types(monkeypatch, apps):
    """The content app under test, configured with the procurement deployment's types."""
    settings = apps["content"].state.settings
    monkeypatch.setattr(settings, "document_types_file", PROCUREMENT)
    return document_types.document_types_from(PROCUREMENT)


async def test_metadata_must_fit_the_types_json_schema(clients, alice, procurement_types) -> None:
    types = await graphql(clients["content"], "{ documentTypes { key label metadataSchema } }")
    keys = [t["key"] for t in types["data"]["documentTypes"]]
    assert keys == ["general", "rc", "ccap", "cctp", "offer"]

    missing = await gql(clients["content"], CREATE, {"i": {"title": "RC", "type": "rc"}}, alice)
    assert missing["data"]["createDocument"]["__typename"] == "InvalidInput"
    assert "procedure" in missing["data"]["createDocument"]["message"]

    bad_date = {"procedure": "open", "deadline": "someday"}
    result = await gql(
        clients["content"],
        CREATE,
        {"i": {"title": "RC", "type": "rc", "metadata": bad_date}},
        alice,
    )
    assert result["data"]["createDocument"]["field"] == "metadata.deadline"

    good = {"procedure": "open", "deadline": "2026-12-01", "lots": 2}
    result = await gql(
        clients["content"], CREATE, {"i": {"title": "RC", "type": "rc", "metadata": good}}, alice
    )
    document = result["data"]["createDocument"]
    assert document["type"] == "rc" and document["metadata"] == good

    # Changing the type re-checks the metadata against the new schema.
    changed = await gql(
        clients["content"],
        UPDATE,
        {"i": {"id": document["id"], "version": 1, "type": "offer"}},
        alice,
    )
    assert changed["data"]["updateDocument"]["__typename"] == "InvalidInput"
    rest = await clients["content"].post(
        "/api/v1/documents",
        json={"title": "Offer", "type": "offer", "metadata": {"supplier": "ACME", "amount": -1}},
        headers=alice.headers,
    )
    assert rest.status_code == 422 and rest.json()["field"] == "metadata.amount"


def test_a_types_file_with_an_invalid_schema_is_refused(tmp_path) -> None:
    bad = tmp_path / "types.yaml"
    bad.write_text("types:\n  x:\n    metadata_schema: {type: object, required: 3}\n")
    with pytest.raises(document_types.DocumentTypesError, match="type x"):
        document_types.load_document_types(bad)


async def test_a_stale_version_is_refused_and_nothing_is_overwritten(clients, alice) -> None:
    document = await create_document(clients["content"], alice, "Draft", tags=["a"])
    first = await gql(
        clients["content"],
        UPDATE,
        {"i": {"id": document["id"], "version": 1, "title": "Final", "status": "FINAL"}},
        alice,
    )
    assert first["data"]["updateDocument"] == {
        "__typename": "Document",
        "id": document["id"],
        "title": "Final",
        "version": 2,
        "tags": ["a"],
        "status": "FINAL",
        "metadata": {},
    }
    stale = await gql(
        clients["content"],
        UPDATE,
        {"i": {"id": document["id"], "version": 1, "title": "Lost"}},
        alice,
    )
    conflict = stale["data"]["updateDocument"]
    assert conflict["__typename"] == "VersionConflict" and conflict["currentVersion"] == 2
    assert conflict["code"] == "CONFLICT"

    rest = await clients["content"].patch(
        f"/api/v1/documents/{document['id']}",
        json={"version": 1, "title": "Lost too"},
        headers=alice.headers,
    )
    assert rest.status_code == 409 and rest.json()["current_version"] == 2
    now = await clients["content"].get(f"/api/v1/documents/{document['id']}", headers=alice.headers)
    assert now.json()["title"] == "Final" and now.json()["version"] == 2

    patched = await clients["content"].patch(
        f"/api/v1/documents/{document['id']}",
        json={"version": 2, "tags": ["b"], "description": "now"},
        headers=alice.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["b"] and patched.json()["version"] == 3


async def test_an_update_that_changes_nothing_keeps_the_version(clients, alice) -> None:
    document = await create_document(clients["content"], alice, "Same")
    result = await gql(
        clients["content"],
        UPDATE,
        {"i": {"id": document["id"], "version": 1, "title": "Same"}},
        alice,
    )
    assert result["data"]["updateDocument"]["version"] == 1


async def test_trash_restore_and_purge(clients, apps, alice) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Ephemeral")
    id = document["id"]
    assert (await upload(content, alice, id, b"bytes")).status_code == 201

    purge_first = await content.delete(
        f"/api/v1/documents/{id}?permanent=true", headers=alice.headers
    )
    assert purge_first.status_code == 404  # only what is in the trash can be purged

    assert (
        await content.delete(f"/api/v1/documents/{id}", headers=alice.headers)
    ).status_code == 204
    assert (await content.get(f"/api/v1/documents/{id}", headers=alice.headers)).status_code == 404
    listed = await content.get("/api/v1/documents", headers=alice.headers)
    assert id not in [d["id"] for d in listed.json()["items"]]
    trash = await content.get("/api/v1/documents?trashed=true", headers=alice.headers)
    assert [d["id"] for d in trash.json()["items"]] == [id]

    restored = await gql(
        content,
        "mutation($id: ID!) { restoreDocument(id: $id) {"
        " __typename ... on Document { id deletedAt } } }",
        {"id": id},
        alice,
    )
    assert restored["data"]["restoreDocument"] == {
        "__typename": "Document",
        "id": id,
        "deletedAt": None,
    }
    assert (await content.get(f"/api/v1/documents/{id}", headers=alice.headers)).status_code == 200

    assert (
        await content.delete(f"/api/v1/documents/{id}", headers=alice.headers)
    ).status_code == 204
    purged = await gql(
        content,
        "mutation($id: ID!) { purgeDocument(id: $id) { __typename ... on PurgedDocument { id } } }",
        {"id": id},
        alice,
    )
    assert purged["data"]["purgeDocument"] == {"__typename": "PurgedDocument", "id": id}
    storage = Resources.of(apps["content"].state.settings, apps["content"].state.redis).storage
    assert not await storage.exists(f"documents/{id}")
    root = apps["content"].state.settings.storage_path / "documents" / id
    assert not root.exists() or not any(root.iterdir())
    from sqlalchemy import func, select

    from subgraphs.content.models import Document, DocumentVersion

    async with apps["content"].state.sessions() as session:
        assert await session.scalar(select(func.count()).where(Document.id == uuid.UUID(id))) == 0
        versions = select(func.count()).where(DocumentVersion.document_id == uuid.UUID(id))
        assert await session.scalar(versions) == 0


async def test_rest_lists_with_a_cursor_and_filters(clients, alice) -> None:
    content = clients["content"]
    for title, tags, status in (
        ("a", ["x"], "draft"),
        ("b", ["x", "y"], "final"),
        ("c", [], "draft"),
    ):
        await create_document(content, alice, title, tags=tags, status=status)
    first = (
        await content.get("/api/v1/documents", params={"limit": 2}, headers=alice.headers)
    ).json()
    assert [d["title"] for d in first["items"]] == ["c", "b"]
    rest = (
        await content.get(
            "/api/v1/documents",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=alice.headers,
        )
    ).json()
    assert [d["title"] for d in rest["items"]] == ["a"] and rest["next_cursor"] is None

    tagged = await content.get("/api/v1/documents", params={"tag": "x"}, headers=alice.headers)
    assert [d["title"] for d in tagged.json()["items"]] == ["b", "a"]
    both = await content.get(
        "/api/v1/documents", params=[("tag", "x"), ("tag", "y")], headers=alice.headers
    )
    assert [d["title"] for d in both.json()["items"]] == ["b"]
    final = await content.get(
        "/api/v1/documents", params={"status": "final"}, headers=alice.headers
    )
    assert [d["title"] for d in final.json()["items"]] == ["b"]
    created = first["items"][1]["created_at"]
    since = await content.get(
        "/api/v1/documents", params={"created_after": created}, headers=alice.headers
    )
    assert [d["title"] for d in since.json()["items"]] == ["c", "b"]

    filtered = await gql(
        content,
        '{ documents(filter: {tags: ["x"], status: DRAFT}) { nodes { title } } }',
        account=alice,
    )
    assert filtered["data"]["documents"]["nodes"] == [{"title": "a"}]
