"""The audit trail: append-only, each entry chained to the one before by its hash.

An entry's hash is SHA-256 over the previous entry's hash and the entry's own content
(canonical JSON). Entries are appended under a transaction-scoped advisory lock, so the
chain is a single line even with several replicas writing at once. Verification walks
the chain in order and reports the first entry whose hash or link does not hold: an
edited, inserted, removed or reordered row.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_scope
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.observability import request_id as current_request_id
from subgraphs.common.pagination import Page, check_page_size
from subgraphs.content.models import AuditEntry

CREATED = "document.created"
UPDATED = "document.updated"
DELETED = "document.deleted"
RESTORED = "document.restored"
PURGED = "document.purged"
VERSION_ADDED = "version.added"
CONTENT_READ = "content.read"
SHARED = "share.granted"
UNSHARED = "share.revoked"

GENESIS = "0" * 64
# Any constant works; it only has to be the same in every replica.
CHAIN_LOCK = 0x436F6E74656E74  # "Content"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_safe(value: Any) -> Any:
    """The value as it will read back from the database: UUIDs and dates as strings."""
    return json.loads(json.dumps(value, default=str))


def entry_hash(entry: AuditEntry) -> str:
    content = canonical(
        {
            "id": str(entry.id),
            "document_id": str(entry.document_id) if entry.document_id else None,
            "action": entry.action,
            "actor_id": str(entry.actor_id) if entry.actor_id else None,
            "request_id": entry.request_id,
            "at": entry.at.isoformat(),
            "changes": entry.changes,
        }
    )
    return hashlib.sha256(f"{entry.prev_hash}\n{content}".encode()).hexdigest()


async def record(
    session: AsyncSession,
    action: str,
    *,
    document_id: uuid.UUID | None,
    actor: Principal | None,
    client: ClientInfo,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction: stored with the change it describes.

    The advisory lock is held until that transaction ends, so no other writer can append
    between reading the last hash and committing this entry.
    """
    await session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    previous = await session.scalar(
        select(AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    )
    entry = AuditEntry(
        id=uuid.uuid4(),
        document_id=document_id,
        action=action,
        actor_id=actor.user_id if actor else None,
        request_id=(client.request_id or current_request_id.get() or None),
        at=utcnow(),
        changes=json_safe(changes or {}),
        prev_hash=previous or GENESIS,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    return entry


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: {"before": ..., "after": ...}} for the fields whose value changed."""
    return {
        name: {"before": before.get(name), "after": value}
        for name, value in after.items()
        if before.get(name) != value
    }


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: uuid.UUID | None = None
    reason: str | None = None
    # The newest entry's hash when the chain holds. The chain cannot show that its newest
    # entries were cut off; comparing this with a value recorded earlier elsewhere can.
    last_hash: str | None = None


async def verify_chain(session: AsyncSession) -> Verification:
    """Walk the whole chain in order; stop at the first entry that does not hold."""
    expected_prev = GENESIS
    checked = 0
    rows = await session.stream_scalars(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
    )
    async for entry in rows:
        checked += 1
        reason = None
        if entry.prev_hash != expected_prev:
            reason = "its previous hash does not match the entry before it (removed or reordered)"
        elif entry.hash != entry_hash(entry):
            reason = "its content does not match its hash (altered)"
        if reason:
            await rows.close()
            return Verification(False, checked, entry.seq, entry.id, reason)
        expected_prev = entry.hash
    return Verification(True, checked, last_hash=expected_prev if checked else None)


async def verify(session: AsyncSession, *, principal: Principal | None) -> Verification:
    require_scope(principal, "admin")
    return await verify_chain(session)


async def trail(
    session: AsyncSession,
    *,
    document_id: uuid.UUID | None,
    first: int,
    after: int | None,
) -> Page[AuditEntry]:
    """Entries oldest first (the chain's order); `after` is the last `seq` seen."""
    check_page_size(first)
    stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(first + 1)
    if document_id is not None:
        stmt = stmt.where(AuditEntry.document_id == document_id)
    if after is not None:
        stmt = stmt.where(AuditEntry.seq > after)
    rows = list((await session.scalars(stmt)).all())
    shown = rows[:first]
    return Page(shown, len(rows) > first, str(shown[-1].seq) if shown else None)
