"""File versions: every upload is a new immutable version, streamed, hashed and limited.

An upload never sits whole in memory: chunks go from the request to storage while a
SHA-256 and a byte count are kept. Past the size limit the upload stops, and the partial
file is removed; a version row is only written once the file is complete, and the file
is removed again if that row cannot be written. So a refused upload leaves nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.errors import BadInput, Forbidden, HubError, NotFound
from subgraphs.content import extraction
from subgraphs.content.errors import PayloadTooLarge, UnsupportedMediaType
from subgraphs.content.models import Document, DocumentShare, DocumentVersion, Permission
from subgraphs.content.service import access, audit, events
from subgraphs.content.service.documents import (
    announce_change,
    commit_change,
    lock_document,
    search_vector,
)
from subgraphs.content.service.resources import Resources

log = logging.getLogger(__name__)

MAX_FILENAME = 255


def media_type_of(declared: str | None, filename: str) -> str:
    """The declared type without parameters; guessed from the name when none is useful."""
    media_type = (declared or "").split(";")[0].strip().lower()
    if not media_type or media_type == "application/octet-stream":
        guessed, _ = mimetypes.guess_type(filename)
        media_type = guessed or media_type or "application/octet-stream"
    if media_type == "text/x-markdown":
        media_type = "text/markdown"
    return media_type


def clean_filename(filename: str | None) -> str:
    # Browsers may send a full path; only the last part is the name.
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:MAX_FILENAME] or "upload"


async def check_upload_allowed(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    document_id: uuid.UUID,
    filename: str | None,
    media_type: str | None,
    declared_size: int | None = None,
) -> tuple[str, str]:
    """Refuse early what would be refused anyway: (clean filename, media type)."""
    caller = require_user(principal)
    row = (
        await session.execute(
            select(access.permitted(caller, Permission.WRITE)).where(
                Document.id == document_id, access.readable(caller)
            )
        )
    ).first()
    if row is None:
        raise NotFound("document not found")
    if not row[0]:
        raise Forbidden("this needs write permission on the document")
    await session.rollback()
    name = clean_filename(filename)
    kind = media_type_of(media_type, name)
    if kind not in resources.settings.allowed_media_types:
        raise UnsupportedMediaType(
            f"{kind} files are not accepted",
            media_type=kind,
            allowed=list(resources.settings.allowed_media_types),
        )
    limit = resources.settings.max_upload_bytes
    if declared_size is not None and declared_size > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes", limit=limit)
    return name, kind


@dataclass
class Received:
    size: int = 0
    sha256: str = ""


async def _metered(
    chunks: AsyncIterator[bytes], limit: int, received: Received
) -> AsyncIterator[bytes]:
    digest = hashlib.sha256()
    async for chunk in chunks:
        received.size += len(chunk)
        if received.size > limit:
            raise PayloadTooLarge(f"the file is larger than {limit} bytes", limit=limit)
        digest.update(chunk)
        yield chunk
    received.sha256 = digest.hexdigest()


async def upload_version(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    filename: str | None,
    media_type: str | None,
    chunks: AsyncIterator[bytes],
    declared_size: int | None = None,
) -> DocumentVersion:
    caller = require_user(principal)
    name, kind = await check_upload_allowed(
        session,
        resources,
        principal=caller,
        document_id=document_id,
        filename=filename,
        media_type=media_type,
        declared_size=declared_size,
    )
    version_id = uuid.uuid4()
    key = f"documents/{document_id}/{version_id}"
    received = Received()
    storage = resources.storage
    # No transaction is open while the bytes arrive: a slow upload holds no lock.
    await storage.save(key, _metered(chunks, resources.settings.max_upload_bytes, received))
    try:
        if received.size == 0:
            raise BadInput("the file is empty", field="file")
        text = await _extract(resources, key, kind, received.size)
        # Taken again now that the file is here: access may have changed meanwhile.
        document = await lock_document(session, caller, document_id, Permission.WRITE)
        number = (
            await session.scalar(
                select(func.coalesce(func.max(DocumentVersion.number), 0)).where(
                    DocumentVersion.document_id == document_id
                )
            )
            or 0
        ) + 1
        version = DocumentVersion(
            id=version_id,
            document_id=document_id,
            number=number,
            storage_key=key,
            filename=name,
            media_type=kind,
            size=received.size,
            sha256=received.sha256,
            created_by=caller.user_id,
            created_at=utcnow(),
        )
        session.add(version)
        document.body_text = text
        document.version += 1
        document.updated_at = utcnow()
        document.search_vector = search_vector(resources, document)
        events.emit(
            session,
            events.DOCUMENT_VERSION_ADDED,
            document_id=document_id,
            document_title=document.title,
            document_type=document.type,
            owner_id=document.owner_id,
            version=number,
            uploaded_by=caller.user_id,
            recipient_ids=await _people_to_tell(session, document, caller),
        )
        await commit_change(
            session,
            resources,
            document,
            audit.VERSION_ADDED,
            actor=caller,
            client=client,
            changes={
                "number": number,
                "filename": name,
                "media_type": kind,
                "size": received.size,
                "sha256": received.sha256,
            },
            announce=False,  # below: once committed, the file must stay whatever happens
        )
    except BaseException:
        await session.rollback()
        await storage.delete(key)
        raise
    await announce_change(resources, document, audit.VERSION_ADDED)
    return version


async def _people_to_tell(
    session: AsyncSession, document: Document, caller: Principal
) -> list[uuid.UUID]:
    """The owner and the users it is shared with (while the share lasts), but the uploader."""
    shared = await session.scalars(
        select(DocumentShare.user_id).where(
            DocumentShare.document_id == document.id,
            DocumentShare.user_id.is_not(None),
            or_(DocumentShare.expires_at.is_(None), DocumentShare.expires_at > func.now()),
        )
    )
    people = [document.owner_id, *(id for id in shared if id is not None)]
    return sorted({id for id in people if id != caller.user_id}, key=str)


async def _extract(resources: Resources, key: str, media_type: str, size: int) -> str:
    settings = resources.settings
    if size > settings.extract_max_bytes or not extraction.can_extract(media_type):
        return ""
    path = resources.storage.local_path(key)
    if path is None:  # a remote backend: extraction would need a local copy first
        return ""
    try:
        return await asyncio.to_thread(
            extraction.extract_text, path, media_type, settings.max_indexed_chars
        )
    except Exception:  # a malformed file is still a file: stored, just not searchable
        log.warning("could not extract text from %s (%s)", key, media_type, exc_info=True)
        return ""


async def open_version(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    number: int | None = None,
) -> tuple[DocumentVersion, AsyncIterator[bytes]]:
    """A version of a readable document (the newest by default) and its bytes; audited."""
    stmt = (
        select(DocumentVersion)
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(DocumentVersion.document_id == document_id, access.readable(principal))
        .order_by(DocumentVersion.number.desc())
        .limit(1)
    )
    if number is not None:
        stmt = stmt.where(DocumentVersion.number == number)
    version = await session.scalar(stmt)
    if version is None:
        raise NotFound("document not found" if number is None else "version not found")
    if not await resources.storage.exists(version.storage_key):
        log.error("the file of %s version %s is missing", document_id, version.number)
        raise HubError("the file of this version is unavailable")
    await audit.record(
        session,
        audit.CONTENT_READ,
        document_id=document_id,
        actor=principal,
        client=client,
        changes={"number": version.number, "sha256": version.sha256},
    )
    await session.commit()
    return version, resources.storage.read(version.storage_key)


async def list_versions(
    session: AsyncSession, *, principal: Principal | None, document_id: uuid.UUID
) -> list[DocumentVersion]:
    readable = await session.scalar(
        select(Document.id).where(Document.id == document_id, access.readable(principal))
    )
    if readable is None:
        raise NotFound("document not found")
    return list(
        (
            await session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.number.desc())
            )
        ).all()
    )
