"""Domain events for other services, written to the outbox in the transaction of the change."""

from __future__ import annotations

import uuid

from content.conftest import create_document, upload
from sqlalchemy import select

from subgraphs.content.models import OutboxEvent


async def events_about(apps, document_id: str) -> list[tuple[str, dict]]:
    async with apps["content"].state.sessions() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at))).all()
    return [(row.type, row.payload) for row in rows if row.payload["document_id"] == document_id]


async def test_created_shared_and_version_added_are_announced(clients, apps, alice, bob):
    content = clients["content"]
    document = await create_document(content, alice, "Tender", type="general")
    id = document["id"]
    shared = await content.post(
        f"/api/v1/documents/{id}/shares",
        json={"permission": "write", "user_id": bob.id},
        headers=alice.headers,
    )
    assert shared.status_code == 201
    await content.post(
        f"/api/v1/documents/{id}/shares",
        json={"permission": "read", "role": "auditor"},
        headers=alice.headers,
    )
    assert (await upload(content, bob, id, b"bob's offer")).status_code == 201
    refused = await upload(content, bob, id, b"MZ", "x.exe", "application/x-msdownload")
    assert refused.status_code == 415

    events = await events_about(apps, id)
    assert [type for type, _ in events] == [
        "content.document_created",
        "content.document_shared",  # to bob; a role share has no one to tell
        "content.document_version_added",
    ]
    created, shared_event, version_added = (payload for _, payload in events)
    assert created["owner_id"] == alice.id and created["document_title"] == "Tender"
    assert shared_event == {
        "document_id": id,
        "document_title": "Tender",
        "grantee_id": bob.id,
        "permission": "write",
        "shared_by": alice.id,
    }
    # The uploader is not told of their own upload; the owner is.
    assert version_added["recipient_ids"] == [alice.id] and version_added["version"] == 1
    assert uuid.UUID(version_added["uploaded_by"]) == uuid.UUID(bob.id)
