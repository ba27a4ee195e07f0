"""The audit trail: every create, content read, update, share, delete and restore, with
actor, time, request id and before/after; hash-chained, append-only, verifiable."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import uuid
from contextlib import asynccontextmanager

import pytest
from conftest import ROOT
from content.conftest import create_document, gql, upload
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from subgraphs.content.models import AuditEntry

TRAIL = """query($id: ID) { auditTrail(documentId: $id, first: 100) {
    nodes { seq action actor { id } requestId changes prevHash hash } } }"""
VERIFY = "{ verifyAuditTrail { ok checked firstBrokenSeq firstBrokenId reason lastHash } }"


async def test_every_change_and_content_read_is_recorded(clients, alice, bob) -> None:
    content = clients["content"]
    traced = {**alice.headers, "x-request-id": "audit-req-1"}
    created = await content.post("/api/v1/documents", json={"title": "Audited"}, headers=traced)
    id = created.json()["id"]
    await upload(content, alice, id, b"v1")
    await content.get(f"/api/v1/documents/{id}/content", headers=alice.headers)
    await content.patch(
        f"/api/v1/documents/{id}", json={"version": 2, "title": "Audited!"}, headers=alice.headers
    )
    share = await content.post(
        f"/api/v1/documents/{id}/shares",
        json={"permission": "read", "user_id": bob.id},
        headers=alice.headers,
    )
    await content.get(f"/api/v1/documents/{id}/content", headers=bob.headers)
    await content.delete(
        f"/api/v1/documents/{id}/shares/{share.json()['id']}", headers=alice.headers
    )
    await content.delete(f"/api/v1/documents/{id}", headers=alice.headers)
    await content.post(f"/api/v1/documents/{id}/restore", headers=alice.headers)

    trail = (await gql(content, TRAIL, {"id": id}, alice))["data"]["auditTrail"]["nodes"]
    assert [(e["action"], e["actor"]["id"]) for e in trail] == [
        ("document.created", alice.id),
        ("version.added", alice.id),
        ("content.read", alice.id),
        ("document.updated", alice.id),
        ("share.granted", alice.id),
        ("content.read", bob.id),
        ("share.revoked", alice.id),
        ("document.deleted", alice.id),
        ("document.restored", alice.id),
    ]
    assert trail[0]["requestId"] == "audit-req-1"
    assert all(e["requestId"] for e in trail)  # made up when the client sent none
    assert trail[3]["changes"]["title"] == {"before": "Audited", "after": "Audited!"}
    assert trail[3]["changes"]["version"] == {"before": 2, "after": 3}
    assert trail[4]["changes"]["share"]["after"]["user_id"] == bob.id
    assert trail[1]["changes"]["size"] == 2
    assert all(a["hash"] == b["prevHash"] for a, b in itertools.pairwise(trail))

    rest = await content.get(f"/api/v1/documents/{id}/audit?limit=3", headers=alice.headers)
    assert [e["action"] for e in rest.json()["items"]] == [e["action"] for e in trail[:3]]
    # Only those who manage the document see its trail; to others it does not exist.
    assert (
        await content.get(f"/api/v1/documents/{id}/audit", headers=bob.headers)
    ).status_code == 404
    denied = await gql(content, TRAIL, {"id": None}, alice)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@asynccontextmanager
async def bypassing_triggers(apps):
    """A superuser's session with triggers off: what an attacker with the database would do."""
    async with apps["content"].state.sessions() as session:
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        yield session
        await session.commit()


async def test_the_trail_is_append_only(clients, apps, alice) -> None:
    await create_document(clients["content"], alice, "Untouchable")
    async with apps["content"].state.sessions() as session:
        for statement in (
            "UPDATE audit_entries SET action = 'x'",
            "DELETE FROM audit_entries",
            "TRUNCATE audit_entries",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
            await session.rollback()


async def test_a_tampered_entry_is_detected_and_named(clients, apps, alice, admin) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Evidence")
    await content.patch(
        f"/api/v1/documents/{document['id']}",
        json={"version": 1, "title": "Evidence, revised"},
        headers=alice.headers,
    )
    intact = (await gql(content, VERIFY, account=admin))["data"]["verifyAuditTrail"]
    async with apps["content"].state.sessions() as session:
        newest = await session.scalar(select(AuditEntry.hash).order_by(AuditEntry.seq.desc()))
    assert intact["ok"] and intact["lastHash"] == newest and intact["checked"] >= 2
    forbidden = await gql(content, VERIFY, account=alice)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    async with apps["content"].state.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry)
            .where(AuditEntry.document_id == uuid.UUID(document["id"]))
            .order_by(AuditEntry.seq.desc())
        )
    assert entry is not None and entry.action == "document.updated"
    original = entry.changes
    forged = {**original, "title": {"before": "Evidence", "after": "Nothing to see"}}
    try:
        async with bypassing_triggers(apps) as session:
            await session.execute(
                text("UPDATE audit_entries SET changes = CAST(:c AS json) WHERE seq = :s"),
                {"c": json.dumps(forged), "s": entry.seq},
            )
        result = (await gql(content, VERIFY, account=admin))["data"]["verifyAuditTrail"]
        assert result["ok"] is False
        assert result["firstBrokenSeq"] == entry.seq
        assert result["firstBrokenId"] == str(entry.id)
        assert "altered" in result["reason"]

        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "subgraphs.content",
            "verify-audit",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await command.communicate()
        assert command.returncode == 1
        assert f"broken at entry {entry.seq}" in stdout.decode()
    finally:
        async with bypassing_triggers(apps) as session:
            await session.execute(
                text("UPDATE audit_entries SET changes = CAST(:c AS json) WHERE seq = :s"),
                {"c": json.dumps(original), "s": entry.seq},
            )
    assert (await gql(content, VERIFY, account=admin))["data"]["verifyAuditTrail"]["ok"]


async def test_a_removed_entry_breaks_the_link_of_the_next_one(clients, apps, alice, admin):
    content = clients["content"]
    document = await create_document(content, alice, "Gap")
    await content.delete(f"/api/v1/documents/{document['id']}", headers=alice.headers)
    async with apps["content"].state.sessions() as session:
        created, deleted = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.document_id == uuid.UUID(document["id"]))
                .order_by(AuditEntry.seq)
            )
        ).all()
    columns = "seq, id, document_id, action, actor_id, request_id, at, changes, prev_hash, hash"
    async with bypassing_triggers(apps) as session:
        await session.execute(
            text(
                f"CREATE TABLE removed_entry AS SELECT {columns} FROM audit_entries WHERE seq = :s"
            ),
            {"s": created.seq},
        )
        await session.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": created.seq})
    try:
        report = (await gql(content, VERIFY, account=admin))["data"]["verifyAuditTrail"]
        assert report["ok"] is False and report["firstBrokenSeq"] == deleted.seq
        assert "removed or reordered" in report["reason"]
    finally:
        async with bypassing_triggers(apps) as session:
            await session.execute(
                text(f"INSERT INTO audit_entries ({columns}) SELECT {columns} FROM removed_entry")
            )
            await session.execute(text("DROP TABLE removed_entry"))
    assert (await gql(content, VERIFY, account=admin))["data"]["verifyAuditTrail"]["ok"]
