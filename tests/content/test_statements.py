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
