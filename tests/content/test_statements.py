"""Listing documents with their owners, versions and sharing costs a fixed number of SQL
statements, whatever the page size: every field hanging off a document is batched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import count_statements, sign_up
from content.conftest import gql

LIST = """query($n: Int!, $owner: ID!) { documents(first: $n, filter: {ownerId: $owner}) {
    nodes { id title owner { id } myPermission shares { id }
            versions { number sha256 size } latestVersion { number } } } }"""
USER_DOCUMENTS = """query($r: [_Any!]!, $n: Int!) { _entities(representations: $r) {
    ... on User { documents(first: $n) { nodes { id versions { number } } } } } }"""


async def documents_with_versions(apps, owner: str, n: int) -> None:
    """Rows straight into content's tables: n documents, two versions each."""
    from subgraphs.content.models import Document, DocumentVersion

    start = datetime.now(UTC)
    async with apps["content"].state.sessions() as session:
        for i in range(n):
            document = Document(
                title=f"doc {i}",
                owner_id=uuid.UUID(owner),
                created_at=start + timedelta(milliseconds=i),
                updated_at=start,
            )
            session.add(document)
            await session.flush()
            session.add_all(
                DocumentVersion(
                    document_id=document.id,
                    number=number,
                    storage_key=f"documents/{document.id}/{number}",
                    filename="f.txt",
                    media_type="text/plain",
                    size=number,
                    sha256="0" * 64,
                    created_by=uuid.UUID(owner),
                )
                for number in (1, 2)
            )
        await session.commit()


@pytest.mark.parametrize("n", [10, 100])
async def test_listing_costs_the_same_statements_for_10_and_100(apps, clients, n) -> None:
    owner = await sign_up(clients["identity"])
    await documents_with_versions(apps, owner.id, n)
    engine = apps["content"].state.engine

    with count_statements(engine) as sql:
        result = await gql(clients["content"], LIST, {"n": n, "owner": owner.id}, owner)
    nodes = result["data"]["documents"]["nodes"]
    assert len(nodes) == n
    assert all(
        len(node["versions"]) == 2 and node["latestVersion"]["number"] == 2 for node in nodes
    )
    assert all(
        node["owner"] == {"id": owner.id} and node["myPermission"] == "MANAGE" for node in nodes
    )
    # the page, the versions, the caller's permissions, the shares
    assert sql.count == 4, sql.statements

    with count_statements(engine) as sql:
        result = await gql(
            clients["content"],
            USER_DOCUMENTS,
            {"r": [{"__typename": "User", "id": owner.id}], "n": n},
            owner,
        )
    assert len(result["data"]["_entities"][0]["documents"]["nodes"]) == n
    assert sql.count == 2  # the owners' pages, the versions

    with count_statements(engine) as sql:
        response = await clients["content"].get(
            "/api/v1/documents", params={"limit": n, "owner_id": owner.id}, headers=owner.headers
        )
    assert [d["latest_version"]["number"] for d in response.json()["items"]] == [2] * n
    assert sql.count == 2  # the page, the newest versions


ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Document { %s } } }"""


@pytest.mark.parametrize("n", [1, 100])
async def test_entities_with_versions_and_permissions_cost_three_statements(
    apps, clients, n
) -> None:
    """`_entities` loads what the operation selects with the documents: the documents, their
    versions, the caller's permissions; none of them reads the (large) body text. One
    document or a hundred, each is one statement."""
    owner = await sign_up(clients["identity"])
    await documents_with_versions(apps, owner.id, n)
    listed = await gql(clients["content"], LIST, {"n": n, "owner": owner.id}, owner)
    ids = [node["id"] for node in listed["data"]["documents"]["nodes"]]
    representations = [{"__typename": "Document", "id": id} for id in ids]
    engine = apps["content"].state.engine

    selections = {
        "id title owner { id }": 1,
        "id latestVersion { number size }": 2,
        "id myPermission": 2,
        "id ... on Document { latestVersion { number } } versions { number } myPermission": 3,
    }
    for selection, statements in selections.items():
        with count_statements(engine) as sql:
            result = await gql(
                clients["content"], ENTITIES % selection, {"r": representations}, owner
            )
        assert "errors" not in result, result
        entities = result["data"]["_entities"]
        assert [e["id"] for e in entities] == ids
        if "latestVersion" in selection:
            assert all(e["latestVersion"]["number"] == 2 for e in entities)
        if "versions" in selection:
            assert all([v["number"] for v in e["versions"]] == [2, 1] for e in entities)
        if "myPermission" in selection:
            assert all(e["myPermission"] == "MANAGE" for e in entities)
        assert sql.count == statements, (selection, sql.statements)
        assert not any("body_text" in statement for statement in sql.statements)
        # One id is asked with an equality, whose plan PostgreSQL keeps (sql.matches_ids).
        assert all(("= ANY (" in statement) == (n > 1) for statement in sql.statements)

    # Someone else gets nulls, and no versions or permissions are looked up for them.
    stranger = await sign_up(clients["identity"])
    with count_statements(engine) as sql:
        result = await gql(
            clients["content"],
            ENTITIES % "id latestVersion { number } myPermission",
            {"r": representations},
            stranger,
        )
    assert result["data"]["_entities"] == [None] * n
    assert sql.count == 1


async def test_lists_do_not_load_the_body_text(apps, clients) -> None:
    owner = await sign_up(clients["identity"])
    await documents_with_versions(apps, owner.id, 3)
    with count_statements(apps["content"].state.engine) as sql:
        result = await gql(clients["content"], LIST, {"n": 3, "owner": owner.id}, owner)
    assert len(result["data"]["documents"]["nodes"]) == 3
    assert sql.statements and not any("body_text" in s for s in sql.statements)
