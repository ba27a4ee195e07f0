"""Entity resolution through `_entities` is batched: N representations, one SQL statement.

The router asks a subgraph for many entities at once; each `resolve_reference` and each
contributed field goes through a DataLoader, so the cost must not grow with N.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import count_statements, graphql, sign_up

ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { %s } }"


async def create_users(apps, n: int) -> list[str]:
    """Rows straight into identity's table: registering 100 users would hash 100 passwords."""
    from subgraphs.identity.models import User

    users = [
        User(email=f"batch-{uuid.uuid4().hex[:8]}-{i}@example.com", display_name="B")
        for i in range(n)
    ]
    async with apps["identity"].state.sessions() as session:
        session.add_all(users)
        await session.commit()
    return [str(user.id) for user in users]


@pytest.mark.parametrize("n", [1, 100])
async def test_users_by_representation_cost_one_statement(apps, clients, n) -> None:
    ids = await create_users(apps, n)
    with count_statements(apps["identity"].state.engine) as sql:
        result = await graphql(
            clients["identity"],
            ENTITIES % "... on User { id displayName }",
            {"r": [{"__typename": "User", "id": i} for i in ids]},
        )
    assert [e["id"] for e in result["data"]["_entities"]] == ids
    assert sql.count == 1


async def test_unknown_user_resolves_to_null(clients) -> None:
    result = await graphql(
        clients["identity"],
        ENTITIES % "... on User { id }",
        {"r": [{"__typename": "User", "id": str(uuid.uuid4())}]},
    )
    assert result["data"]["_entities"] == [None]


async def create_documents(apps, owners: list[str], titles: tuple[str, ...]) -> list[str]:
    """Rows straight into content's table, `titles` for each owner, created in that order."""
    from datetime import UTC, datetime, timedelta

    from subgraphs.content.models import Document

    start = datetime.now(UTC)
    documents = [
        Document(
            title=title,
            owner_id=uuid.UUID(owner),
            created_at=start + timedelta(milliseconds=i),
            updated_at=start,
        )
        for owner in owners
        for i, title in enumerate(titles)
    ]
    async with apps["content"].state.sessions() as session:
        session.add_all(documents)
        await session.commit()
    return [str(document.id) for document in documents]


async def test_documents_and_their_owners_documents_cost_one_statement_each(apps, clients):
    owners = [str(uuid.uuid4()) for _ in range(100)]
    documents = await create_documents(apps, owners, ("first", "second"))
    # An administrator may read every document; the access rule is part of the one query.
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)

    with count_statements(apps["content"].state.engine) as sql:
        result = await graphql(
            clients["content"],
            ENTITIES % "... on Document { id title owner { id } }",
            {"r": [{"__typename": "Document", "id": d} for d in documents]},
            admin.headers,
        )
    assert [e["id"] for e in result["data"]["_entities"]] == documents
    assert sql.count == 1

    with count_statements(apps["content"].state.engine) as sql:
        result = await graphql(
            clients["content"],
            ENTITIES
            % "... on User { id documents(first: 1) { nodes { title } pageInfo { hasNextPage } } }",
            {"r": [{"__typename": "User", "id": o} for o in owners]},
            admin.headers,
        )
    pages = [e["documents"] for e in result["data"]["_entities"]]
    assert all(p["nodes"] == [{"title": "second"}] and p["pageInfo"]["hasNextPage"] for p in pages)
    assert sql.count == 1

    # Someone else, signed in or not, resolves none of them.
    stranger = await sign_up(clients["identity"])
    for headers in (stranger.headers, None):
        result = await graphql(
            clients["content"],
            ENTITIES % "... on Document { id }",
            {"r": [{"__typename": "Document", "id": d} for d in documents[:5]]},
            headers,
        )
        assert result["data"]["_entities"] == [None] * 5


async def test_users_notifications_cost_one_statement(apps, clients) -> None:
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    recipients = [str(uuid.uuid4()) for _ in range(100)]
    for recipient in recipients[:50]:
        sent = await graphql(
            clients["communication"],
            "mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id } }",
            {"i": {"recipientId": recipient, "title": "hello"}},
            admin.headers,  # notifications:send, and notifications:admin to read them all
        )
        assert "errors" not in sent, sent
    with count_statements(apps["communication"].state.engine) as sql:
        result = await graphql(
            clients["communication"],
            ENTITIES % "... on User { notifications { nodes { title } } }",
            {"r": [{"__typename": "User", "id": r} for r in recipients]},
            admin.headers,
        )
    counts = [len(e["notifications"]["nodes"]) for e in result["data"]["_entities"]]
    assert counts == [1] * 50 + [0] * 50
    assert sql.count == 1


async def test_documents_workflows_and_instances_cost_one_statement_each(apps, clients) -> None:
    documents = [str(uuid.uuid4()) for _ in range(100)]
    instances = []
    for document in documents:
        started = await graphql(
            clients["workflow"],
            "mutation($i: StartWorkflowInput!) { startWorkflow(input: $i) { id } }",
            {"i": {"definitionKey": "review", "documentId": document}},
        )
        instances.append(started["data"]["startWorkflow"]["id"])

    with count_statements(apps["workflow"].state.engine) as sql:
        result = await graphql(
            clients["workflow"],
            ENTITIES % "... on Document { id workflows { id state } }",
            {"r": [{"__typename": "Document", "id": d} for d in documents]},
        )
    assert [e["workflows"][0]["id"] for e in result["data"]["_entities"]] == instances
    assert sql.count == 1

    with count_statements(apps["workflow"].state.engine) as sql:
        result = await graphql(
            clients["workflow"],
            ENTITIES % "... on WorkflowInstance { id document { id } }",
            {"r": [{"__typename": "WorkflowInstance", "id": i} for i in instances]},
        )
    assert [e["document"]["id"] for e in result["data"]["_entities"]] == documents
    assert sql.count == 1
