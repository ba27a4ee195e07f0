"""Who may read, change and manage a document — and that a document one may not read is
indistinguishable from one that does not exist, on every read path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import graphql
from content.conftest import create_document, gql, organization_with, upload

ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Document { id } } }"


async def answers_about(content, account, document_id: str, word: str) -> list[Any]:
    """What every read path says about one document id, to the given caller."""
    headers = account.headers if account else {}
    answers: list[Any] = []
    for path in ("", "/versions", "/content", "/content?version=1", "/audit", "/shares"):
        response = await content.get(f"/api/v1/documents/{document_id}{path}", headers=headers)
        body = response.json() if "json" in response.headers["content-type"] else response.text
        answers.append((path, response.status_code, body))
    query = """query($id: ID!, $r: [_Any!]!, $q: String!) {
        document(id: $id) { id }
        _entities(representations: $r) { ... on Document { id } }
        searchDocuments(query: $q) { nodes { document { id } snippet } }
        documents(first: 100) { nodes { id } } }"""
    result = await graphql(
        content,
        query,
        {"id": document_id, "r": [{"__typename": "Document", "id": document_id}], "q": word},
        headers,
    )
    data = result["data"]
    answers.append(("graphql", data["document"], data["_entities"], data["searchDocuments"]))
    answers.append(document_id in [n["id"] for n in data["documents"]["nodes"]])
    search = await content.get("/api/v1/documents/search", params={"q": word}, headers=headers)
    answers.append(("rest search", search.status_code, search.json()["items"]))
    upload_answer = await upload(content, account, document_id, b"x") if account else None
    answers.append(
        ("upload", upload_answer.status_code, upload_answer.json()) if upload_answer else None
    )
    return answers


async def test_forbidden_and_missing_documents_look_the_same_everywhere(
    clients, alice, bob
) -> None:
    content = clients["content"]
    word = f"zebra{uuid.uuid4().hex[:8]}"
    secret = await create_document(content, alice, f"Secret {word}", description=word)
    assert (
        await upload(content, alice, secret["id"], f"{word} inside".encode())
    ).status_code == 201
    missing = str(uuid.uuid4())

    for stranger in (bob, None):
        forbidden = await answers_about(content, stranger, secret["id"], word)
        absent = await answers_about(content, stranger, missing, word)
        assert forbidden == absent

    # And the owner does see it on every path.
    own = await answers_about(content, alice, secret["id"], word)
    assert own[0][1] == 200 and own[6][1] == {"id": secret["id"]}


async def test_mutations_on_an_unreadable_document_are_not_found(clients, alice, bob) -> None:
    content = clients["content"]
    secret = await create_document(content, alice, "Secret")
    for id in (secret["id"], str(uuid.uuid4())):
        patched = await content.patch(
            f"/api/v1/documents/{id}", json={"version": 1, "title": "x"}, headers=bob.headers
        )
        deleted = await content.delete(f"/api/v1/documents/{id}", headers=bob.headers)
        shared = await content.post(
            f"/api/v1/documents/{id}/shares",
            json={"permission": "read", "user_id": bob.id},
            headers=bob.headers,
        )
        assert [patched.status_code, deleted.status_code, shared.status_code] == [404] * 3
        result = await gql(
            content,
            "mutation($id: ID!) { deleteDocument(id: $id) { __typename } }",
            {"id": id},
            bob,
        )
        assert result["data"]["deleteDocument"]["__typename"] == "DocumentNotFound"


async def share(content, owner, document_id, **grant):
    response = await content.post(
        f"/api/v1/documents/{document_id}/shares", json=grant, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_share_permissions_read_write_manage(clients, alice, bob, admin) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Shared")
    id = document["id"]
    url = f"/api/v1/documents/{id}"

    granted = await share(content, alice, id, permission="read", user_id=bob.id)
    assert (await content.get(url, headers=bob.headers)).status_code == 200
    listed = await content.get("/api/v1/documents", headers=bob.headers)
    assert id in [d["id"] for d in listed.json()["items"]]
    refused = await content.patch(url, json={"version": 2, "title": "x"}, headers=bob.headers)
    assert refused.status_code == 403  # readable, so no need to pretend it is missing
    typed = await gql(
        content,
        "mutation($i: UpdateDocumentInput!) { updateDocument(input: $i) { __typename } }",
        {"i": {"id": id, "version": 2, "title": "x"}},
        bob,
    )
    assert typed["data"]["updateDocument"]["__typename"] == "PermissionDenied"

    await share(content, alice, id, permission="write", user_id=bob.id)  # replaces the grant
    written = await content.patch(url, json={"version": 3, "title": "By Bob"}, headers=bob.headers)
    assert written.status_code == 200, written.text
    assert (await upload(content, bob, id, b"bob's file")).status_code == 201
    # Write is not manage: no sharing, no deleting, no changing who may see it.
    assert (
        await content.post(
            f"{url}/shares", json={"permission": "read", "role": "x"}, headers=bob.headers
        )
    ).status_code == 403
    assert (await content.delete(url, headers=bob.headers)).status_code == 403
    visibility = await content.patch(
        url, json={"version": 5, "visibility": "organization"}, headers=bob.headers
    )
    assert visibility.status_code == 403

    shares = (await content.get(f"{url}/shares", headers=alice.headers)).json()
    assert [(s["user_id"], s["permission"]) for s in shares] == [(bob.id, "write")]
    assert shares[0]["id"] == granted["id"]
    mine = await gql(
        content,
        "query($id: ID!) { document(id: $id) { myPermission shares { permission } } }",
        {"id": id},
        bob,
    )
    assert mine["data"]["document"] == {"myPermission": "WRITE", "shares": []}

    # An administrator reads everything.
    assert (await content.get(f"{url}/versions", headers=admin.headers)).status_code == 200
    await share(content, alice, id, permission="manage", user_id=bob.id)
    assert (await content.delete(url, headers=bob.headers)).status_code == 204


async def test_an_expired_share_gives_nothing(clients, apps, alice, bob) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Short-lived")
    id = document["id"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = await content.post(
        f"/api/v1/documents/{id}/shares",
        json={"permission": "read", "user_id": bob.id, "expires_at": past},
        headers=alice.headers,
    )
    assert refused.status_code == 422

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    granted = await share(content, alice, id, permission="read", user_id=bob.id, expires_at=soon)
    assert (await content.get(f"/api/v1/documents/{id}", headers=bob.headers)).status_code == 200

    # Time passes: the share's expiry is now behind us.
    from sqlalchemy import update

    from subgraphs.content.models import DocumentShare

    async with apps["content"].state.sessions() as session:
        await session.execute(
            update(DocumentShare)
            .where(DocumentShare.id == uuid.UUID(granted["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert (await content.get(f"/api/v1/documents/{id}", headers=bob.headers)).status_code == 404


async def test_role_shares_and_organization_visibility(clients, apps, alice) -> None:
    content = clients["content"]
    org, people = await organization_with(apps, clients, buyer="buyer", supplier="supplier")
    other_org, outsiders = await organization_with(apps, clients, stranger="buyer")
    buyer, supplier, stranger = people["buyer"], people["supplier"], outsiders["stranger"]

    # Only a member may file a document under an organization.
    refused = await content.post(
        "/api/v1/documents",
        json={"title": "Not mine", "organization_id": str(org)},
        headers=alice.headers,
    )
    assert refused.status_code == 422 and refused.json()["field"] == "organizationId"

    document = await create_document(
        content, buyer, "Consultation", organization_id=str(org), visibility="organization"
    )
    url = f"/api/v1/documents/{document['id']}"
    assert (await content.get(url, headers=supplier.headers)).status_code == 200
    assert (await content.get(url, headers=stranger.headers)).status_code == 404
    assert (await content.get(url, headers=alice.headers)).status_code == 404

    private = await create_document(content, buyer, "Evaluation grid", organization_id=str(org))
    private_url = f"/api/v1/documents/{private['id']}"
    assert (await content.get(private_url, headers=supplier.headers)).status_code == 404
    # A role share reaches those who hold the role in the document's organization only:
    # the stranger is a buyer too, in another organization.
    await share(content, buyer, private["id"], permission="read", role="buyer")
    await share(content, buyer, private["id"], permission="write", role="supplier")
    assert (await content.get(private_url, headers=supplier.headers)).status_code == 200
    assert (await content.get(private_url, headers=stranger.headers)).status_code == 404
    del other_org


async def test_platform_role_shares(clients, apps, alice) -> None:
    from conftest import sign_up

    content = clients["content"]
    auditor = await sign_up(clients["identity"], roles=("auditor",), apps=apps)
    document = await create_document(content, alice, "For auditors")
    url = f"/api/v1/documents/{document['id']}"
    assert (await content.get(url, headers=auditor.headers)).status_code == 404
    await share(content, alice, document["id"], permission="read", role="auditor")
    assert (await content.get(url, headers=auditor.headers)).status_code == 200


async def test_anonymous_callers_read_nothing(clients, alice) -> None:
    content = clients["content"]
    await create_document(content, alice, "Anything")
    listed = await content.get("/api/v1/documents")
    assert listed.status_code == 200 and listed.json()["items"] == []
    result = await graphql(content, "{ documents { nodes { id } } }")
    assert result["data"]["documents"]["nodes"] == []
