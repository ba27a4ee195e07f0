"""Documents: create, update (optimistic concurrency), soft delete, restore, purge; lists.

Every read goes through `access.readable`, every write through `lock_document` with the
permission it needs: a document the caller may not read is NOT_FOUND, one they may read
but not change is FORBIDDEN.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    cast,
    func,
    inspect,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, array
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.database import utcnow
from subgraphs.common.dataloaders import grouped, ordered
from subgraphs.common.errors import BadInput, Forbidden, NotFound
from subgraphs.common.pagination import (
    Page,
    PageKey,
    page_of,
    page_statement,
    pages_per_parent,
)
from subgraphs.common.reads import fetch_rows
from subgraphs.content.document_types import DEFAULT_TYPE, DocumentType
from subgraphs.content.errors import VersionConflict
from subgraphs.content.models import (
    Document,
    DocumentShare,
    DocumentStatus,
    DocumentVersion,
    Permission,
    Visibility,
)
from subgraphs.content.service import access, audit, events
from subgraphs.content.service.resources import Resources
from subgraphs.content.service.sql import ids_parameters, matches_ids
from subgraphs.content.service.text import storable_text
from subgraphs.content.settings import ContentSettings

log = logging.getLogger(__name__)

MAX_TITLE = 500
MAX_DESCRIPTION = 10_000
MAX_TAGS = 50
MAX_TAG = 64
MAX_METADATA_BYTES = 64 * 1024


class Keep:
    """Marks a field an update leaves as it is (None may be a real value)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = Keep()


# --- validation -----------------------------------------------------------------------


def clean_title(title: str) -> str:
    title = storable_text(title, field="title").strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    return title


def clean_description(description: str) -> str:
    description = storable_text(description, field="description").strip()
    if len(description) > MAX_DESCRIPTION:
        raise BadInput(
            f"description must be at most {MAX_DESCRIPTION} characters", field="description"
        )
    return description


def clean_tags(tags: Sequence[str]) -> list[str]:
    """Trimmed, lower-case, without duplicates, in the order given."""
    cleaned: list[str] = []
    for tag in tags:
        tag = storable_text(tag, field="tags").strip().lower()
        if not tag or len(tag) > MAX_TAG:
            raise BadInput(f"a tag must be 1 to {MAX_TAG} characters", field="tags")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise BadInput(f"at most {MAX_TAGS} tags", field="tags")
    return cleaned


def document_type(resources: Resources, key: str | None) -> DocumentType:
    types = resources.document_types
    key = key or DEFAULT_TYPE
    if key not in types:
        raise BadInput(
            f"unknown document type {key!r}; this deployment has {', '.join(sorted(types))}",
            field="type",
        )
    return types[key]


def clean_metadata(kind: DocumentType, metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise BadInput("metadata must be a JSON object", field="metadata")
    _check_storable(metadata)
    if len(audit.canonical(metadata).encode()) > MAX_METADATA_BYTES:
        raise BadInput(f"metadata must be at most {MAX_METADATA_BYTES} bytes", field="metadata")
    found = sorted(kind.validator.iter_errors(metadata), key=lambda e: list(e.absolute_path))
    if found:
        where = ".".join(str(p) for p in found[0].absolute_path)
        raise BadInput(
            f"metadata does not fit the {kind.key} type: "
            + "; ".join(error.message for error in found[:5]),
            field=f"metadata.{where}" if where else "metadata",
        )
    return metadata


def _check_storable(value: Any) -> None:
    """What JSON allows but PostgreSQL's jsonb does not: NaN, infinities, NUL characters."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput("metadata numbers must be finite", field="metadata")
    if isinstance(value, str):
        storable_text(value, field="metadata")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(str(key), field="metadata")
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)


def check_organization(
    principal: Principal, organization_id: uuid.UUID | None, visibility: Visibility
) -> None:
    if organization_id is not None and not (
        organization_id in principal.organizations or access.is_admin(principal)
    ):
        raise BadInput("you are not a member of that organization", field="organizationId")
    if visibility is Visibility.ORGANIZATION and organization_id is None:
        raise BadInput("organization-wide visibility needs an organization", field="organizationId")


def weighted_vector(
    language: str,
    *,
    title: Any,
    tags: Any,
    metadata: Any,
    description: Any,
    body: Any,
) -> ColumnElement[Any]:
    """The weighted tsvector: title (A) > tags (B) > metadata and description (C) > body (D).

    The parts are SQL expressions: bound values when a document is written, its columns
    when every document is reindexed.
    """
    config = cast(literal(language), REGCONFIG)

    def weighted(vector: ColumnElement[Any], weight: str) -> ColumnElement[Any]:
        return func.setweight(vector, literal_column(f"'{weight}'"))

    strings_and_numbers = cast(literal('["string", "numeric"]'), Document.attributes.type)
    return (
        weighted(func.to_tsvector(config, title), "A")
        .op("||")(weighted(func.to_tsvector(config, tags), "B"))
        .op("||")(weighted(func.jsonb_to_tsvector(config, metadata, strings_and_numbers), "C"))
        .op("||")(weighted(func.to_tsvector(config, description), "C"))
        .op("||")(weighted(func.to_tsvector(config, body), "D"))
    )


def search_vector(resources: Resources, document: Document) -> ColumnElement[Any]:
    """The document's vector from the values it is being written with.

    The body text is deferred (not loaded with the row): unless it was set on this instance,
    the vector takes it from the row itself, in the UPDATE that writes the vector.
    """
    loaded = inspect(document).dict
    return weighted_vector(
        resources.settings.search_language,
        title=document.title,
        tags=" ".join(document.tags),
        metadata=cast(literal(audit.canonical(document.attributes)), Document.attributes.type),
        description=document.description,
        body=loaded.get("body_text", Document.body_text),
    )


def snapshot(document: Document) -> dict[str, Any]:
    """The fields an audit entry records before and after a change."""
    return {
        "title": document.title,
        "description": document.description,
        "type": document.type,
        "tags": list(document.tags),
        "metadata": document.attributes,
        "status": str(document.status),
        "organization_id": str(document.organization_id) if document.organization_id else None,
        "visibility": str(document.visibility),
    }


# --- writes ---------------------------------------------------------------------------


async def create_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    title: str,
    description: str = "",
    type: str | None = None,
    tags: Sequence[str] = (),
    metadata: Any = None,
    status: DocumentStatus = DocumentStatus.DRAFT,
    organization_id: uuid.UUID | None = None,
    visibility: Visibility = Visibility.PRIVATE,
) -> Document:
    """A new document owned by the caller; only the title is required."""
    caller = require_user(principal)
    kind = document_type(resources, type)
    check_organization(caller, organization_id, visibility)
    document = Document(
        id=uuid.uuid4(),
        title=clean_title(title),
        description=clean_description(description),
        type=kind.key,
        tags=clean_tags(tags),
        attributes=clean_metadata(kind, {} if metadata is None else metadata),
        status=status,
        owner_id=caller.user_id,
        organization_id=organization_id,
        visibility=visibility,
        version=1,
        body_text="",
    )
    document.search_vector = search_vector(resources, document)
    session.add(document)
    events.emit(
        session,
        events.DOCUMENT_CREATED,
        document_id=document.id,
        document_title=document.title,
        document_type=document.type,
        owner_id=document.owner_id,
        organization_id=document.organization_id,
    )
    await commit_change(
        session,
        resources,
        document,
        audit.CREATED,
        actor=caller,
        client=client,
        changes={"after": snapshot(document)},
    )
    return document


@dataclass
class DocumentChanges:
    """An update: each field left at KEEP stays as it is."""

    title: Any = KEEP
    description: Any = KEEP
    type: Any = KEEP
    tags: Any = KEEP
    metadata: Any = KEEP
    status: Any = KEEP
    organization_id: Any = KEEP
    visibility: Any = KEEP

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not KEEP}


# Changing who can see a document is the owner's (or a manager's) decision.
MANAGE_FIELDS = {"organization_id", "visibility"}


async def update_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    expected_version: int,
    changes: DocumentChanges,
) -> Document:
    """Apply `changes` if the document is still at `expected_version`; else VersionConflict."""
    caller = require_user(principal)
    given = changes.given()
    needed = Permission.MANAGE if MANAGE_FIELDS & given.keys() else Permission.WRITE
    document = await lock_document(session, caller, document_id, needed)
    check_version(document, expected_version)
    before = snapshot(document)
    if "title" in given:
        document.title = clean_title(given["title"])
    if "description" in given:
        document.description = clean_description(given["description"] or "")
    if "tags" in given:
        document.tags = clean_tags(given["tags"] or [])
    if "status" in given and given["status"] is not None:
        document.status = DocumentStatus(given["status"])
    if "type" in given or "metadata" in given:
        kind = document_type(resources, given.get("type", document.type))
        metadata = given.get("metadata", document.attributes)
        document.type = kind.key
        document.attributes = clean_metadata(kind, {} if metadata is None else metadata)
    if "organization_id" in given:
        document.organization_id = given["organization_id"]
    if "visibility" in given and given["visibility"] is not None:
        document.visibility = Visibility(given["visibility"])
    check_organization(caller, document.organization_id, document.visibility)
    changed = audit.diff(before, snapshot(document))
    if not changed:
        session.expunge(document)  # nothing to write, not even updated_at
        await session.commit()
        return document
    document.version += 1
    document.updated_at = utcnow()
    document.search_vector = search_vector(resources, document)
    await commit_change(
        session,
        resources,
        document,
        audit.UPDATED,
        actor=caller,
        client=client,
        changes={**changed, "version": {"before": expected_version, "after": document.version}},
    )
    return document


async def delete_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
    expected_version: int | None = None,
) -> Document:
    """Move to the trash: invisible to every read, restorable, purgeable."""
    caller = require_user(principal)
    document = await lock_document(session, caller, document_id, Permission.MANAGE)
    check_version(document, expected_version)
    document.deleted_at = utcnow()
    document.deleted_by = caller.user_id
    document.version += 1
    events.emit(
        session,
        events.DOCUMENT_DELETED,
        document_id=document.id,
        document_title=document.title,
        actor_id=caller.user_id,
    )
    await commit_change(
        session,
        resources,
        document,
        audit.DELETED,
        actor=caller,
        client=client,
        changes={"deleted_at": {"before": None, "after": document.deleted_at.isoformat()}},
    )
    return document


async def restore_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
) -> Document:
    caller = require_user(principal)
    document = await lock_document(session, caller, document_id, Permission.MANAGE, trashed=True)
    deleted_at = document.deleted_at
    document.deleted_at = None
    document.deleted_by = None
    document.version += 1
    await commit_change(
        session,
        resources,
        document,
        audit.RESTORED,
        actor=caller,
        client=client,
        changes={"deleted_at": {"before": deleted_at.isoformat() if deleted_at else None}},
    )
    return document


async def purge_document(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    client: ClientInfo,
    document_id: uuid.UUID,
) -> None:
    """Remove a document in the trash for good: its row, versions, shares and files.

    Its audit entries stay: the trail outlives what it describes.
    """
    caller = require_user(principal)
    document = await lock_document(session, caller, document_id, Permission.MANAGE, trashed=True)
    keys = list(
        (
            await session.scalars(
                select(DocumentVersion.storage_key).where(
                    DocumentVersion.document_id == document_id
                )
            )
        ).all()
    )
    await audit.record(
        session,
        audit.PURGED,
        document_id=document_id,
        actor=caller,
        client=client,
        changes={"before": snapshot(document), "files": len(keys)},
    )
    await session.delete(document)
    await session.commit()
    for key in keys:
        try:
            await resources.storage.delete(key)
        except OSError:
            log.exception("purged %s but could not delete its file %s", document_id, key)


async def lock_document(
    session: AsyncSession,
    caller: Principal,
    document_id: uuid.UUID,
    needed: Permission,
    *,
    trashed: bool = False,
    lock: bool = True,
) -> Document:
    """The document, locked for this transaction, if the caller holds `needed` on it.

    NOT_FOUND when they cannot even read it (or it is (not) in the trash as expected):
    the answer for a document that does not exist.
    """
    stmt = select(Document, access.permitted(caller, needed)).where(
        Document.id == document_id,
        Document.deleted_at.is_not(None) if trashed else access.live(),
        access.permitted(caller, Permission.READ),
    )
    row = (await session.execute(stmt.with_for_update(of=Document) if lock else stmt)).first()
    if row is None:
        raise NotFound("document not found" if not trashed else "no such document in the trash")
    document, allowed = row
    if not allowed:
        raise Forbidden(f"this needs {needed.value} permission on the document")
    return document


async def commit_change(
    session: AsyncSession,
    resources: Resources,
    document: Document,
    action: str,
    *,
    actor: Principal,
    client: ClientInfo,
    changes: dict[str, Any],
    announce: bool = True,
) -> None:
    """Record the change in the audit trail, commit both together, then announce it."""
    await audit.record(
        session, action, document_id=document.id, actor=actor, client=client, changes=changes
    )
    await session.commit()
    if announce:
        await announce_change(resources, document, action)


async def announce_change(resources: Resources, document: Document, action: str) -> None:
    await events.announce(
        resources.redis, events.DocumentChange(document.id, action, document.version)
    )


def check_version(document: Document, expected: int | None) -> None:
    if expected is not None and document.version != expected:
        raise VersionConflict(
            f"the document is at version {document.version}, not {expected}: "
            "reload it and apply your change again",
            current_version=document.version,
        )


# --- reads ----------------------------------------------------------------------------


async def get_document(
    session: AsyncSession, *, principal: Principal | None, document_id: uuid.UUID
) -> Document:
    document = await session.scalar(
        select(Document).where(Document.id == document_id, access.readable(principal))
    )
    if document is None:
        raise NotFound("document not found")
    return document


# What reads hand out: every column but the (large) extracted text and the search vector,
# as plain rows named like the model's attributes (`Document.from_model` takes either).
# Building ORM instances costs several times more per row, and nothing here changes them.
DOCUMENT_FIELDS = tuple(
    getattr(Document, attribute.key)
    for attribute in inspect(Document).column_attrs
    if attribute.key not in ("body_text", "search_vector")
)
VERSION_FIELDS = tuple(
    getattr(DocumentVersion, attribute.key) for attribute in inspect(DocumentVersion).column_attrs
)
# By whether the batch is a single document (sql.matches_ids).
VERSIONS_OF_DOCUMENTS = {
    single: select(*VERSION_FIELDS)
    .where(matches_ids(DocumentVersion.document_id, single=single))
    .order_by(DocumentVersion.document_id, DocumentVersion.number.desc())
    for single in (False, True)
}


async def documents_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, principal: Principal | None
) -> list[Row[Any] | None]:
    """The batch behind `document(id)`, `_entities` and search hits: readable ones only."""
    single, parameters = ids_parameters(ids)
    stmt = _readable_documents_by_ids(access.Reader.of(principal), single)
    rows = await fetch_rows(session, stmt, parameters)
    return ordered(ids, rows, key=lambda document: document.id)


NOT_LOADED: Any = object()


@dataclass(frozen=True)
class Wanted:
    """What `_entities` loads with its documents, from the fields the operation selects.

    One instance per combination, so a request's loader (keyed by the identity of what it
    is bound to) is the same for every representation.
    """

    versions: bool
    permission: bool

    @classmethod
    def of(cls, fields: frozenset[str]) -> Wanted:
        return _WANTED[
            ("versions" in fields or "latestVersion" in fields, "myPermission" in fields)
        ]


_WANTED = {(v, p): Wanted(v, p) for v in (False, True) for p in (False, True)}


@dataclass(slots=True)
class Preloaded:
    """A readable document with, as asked, its versions (newest first) and the caller's
    strongest permission (None when they hold none: see `permissions_on`)."""

    document: Row[Any]
    versions: list[Row[Any]] | None = None
    permission: Permission | None = NOT_LOADED


async def entities_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, principal: Principal | None, wanted: Wanted
) -> list[Preloaded | None]:
    """The batch behind `_entities`: the readable documents, then in one statement each,
    for those only, what the operation selects of their versions and permissions."""
    found = [
        Preloaded(row) if row is not None else None
        for row in await documents_by_ids(session, ids, principal=principal)
    ]
    readable = [item for item in found if item is not None]
    readable_ids = [item.document.id for item in readable]
    if readable and wanted.versions:
        versions = await versions_of_documents(session, readable_ids)
        for item, rows in zip(readable, versions, strict=True):
            item.versions = rows
    if readable and wanted.permission:
        permissions = await access.permissions_on(session, principal, readable_ids)
        for item, permission in zip(readable, permissions, strict=True):
            item.permission = permission
    return found


@dataclass(frozen=True)
class DocumentFilter:
    """Narrows a list; every field given must hold. Hashable: it is part of loader keys."""

    type: str | None = None
    tags: tuple[str, ...] = ()  # all of them
    status: DocumentStatus | None = None
    owner_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    trashed: bool = False  # the trash instead: deleted documents the caller manages

    def apply(self, stmt: Select[Any], principal: Principal | None) -> Select[Any]:
        if self.trashed:
            stmt = stmt.where(
                Document.deleted_at.is_not(None), access.permitted(principal, Permission.MANAGE)
            )
        else:
            stmt = stmt.where(access.readable(principal))
        conditions: list[ColumnElement[bool]] = []
        if self.type is not None:
            conditions.append(Document.type == self.type)
        if self.tags:
            conditions.append(Document.tags.contains(array(clean_tags(self.tags))))
        if self.status is not None:
            conditions.append(Document.status == self.status)
        if self.owner_id is not None:
            conditions.append(Document.owner_id == self.owner_id)
        if self.organization_id is not None:
            conditions.append(Document.organization_id == self.organization_id)
        if self.created_after is not None:
            conditions.append(Document.created_at >= self.created_after)
        if self.created_before is not None:
            conditions.append(Document.created_at < self.created_before)
        if self.updated_after is not None:
            conditions.append(Document.updated_at >= self.updated_after)
        if self.updated_before is not None:
            conditions.append(Document.updated_at < self.updated_before)
        return stmt.where(and_(True, *conditions))


async def list_documents(
    session: AsyncSession,
    *,
    principal: Principal | None,
    first: int,
    after: str | None,
    filter: DocumentFilter = DocumentFilter(),
    columns: frozenset[str] | None = None,
) -> Page[Row[Any]]:
    """`columns`: the model attributes the caller will read of each row (None: all of
    DOCUMENT_FIELDS); a page's rows always hold `id` and `created_at` too."""
    stmt = _documents_page(filter, access.Reader.of(principal), first, after, columns)
    return page_of(await fetch_rows(session, stmt), first)


# Built statements kept per (filter, caller, page): a kept statement is not built again,
# and SQLAlchemy remembers its cache key, so a repeated list costs only its execution.
@functools.lru_cache(maxsize=access.STATEMENTS_KEPT)
def _documents_page(
    filter: DocumentFilter,
    reader: access.Reader | None,
    first: int,
    after: str | None,
    columns: frozenset[str] | None,
) -> Select[Any]:
    principal = reader.principal() if reader else None
    stmt = filter.apply(select(*_document_fields(columns)), principal)
    return page_statement(stmt, Document, first=first, after=after)


def _document_fields(columns: frozenset[str] | None) -> tuple[Any, ...]:
    if columns is None:
        return DOCUMENT_FIELDS
    wanted = columns | {"id", "created_at"}  # a page's cursor is read from them
    return tuple(field for field in DOCUMENT_FIELDS if field.key in wanted)


@functools.lru_cache(maxsize=access.STATEMENTS_KEPT)
def _readable_documents_by_ids(reader: access.Reader | None, single: bool) -> Select[Any]:
    principal = reader.principal() if reader else None
    return select(*DOCUMENT_FIELDS).where(
        matches_ids(Document.id, single=single), access.readable(principal)
    )


@dataclass(frozen=True)
class OwnerPageKey(PageKey):
    """One owner's page of documents, as `User.documents(first, after, filter)` asks."""

    filter: DocumentFilter = field(default_factory=DocumentFilter)


async def documents_of_owners(
    session: AsyncSession, keys: Sequence[OwnerPageKey], *, principal: Principal | None
) -> list[Page[Document]]:
    """One query per distinct filter (normally one), however many owners are asked for."""
    pages: dict[OwnerPageKey, Page[Document]] = {}
    by_filter: dict[DocumentFilter, list[OwnerPageKey]] = {}
    for key in keys:
        by_filter.setdefault(key.filter, []).append(key)
    for filter, filter_keys in by_filter.items():
        stmt = filter.apply(select(Document), principal)
        found = await pages_per_parent(session, stmt, Document, Document.owner_id, filter_keys)
        pages.update(zip(filter_keys, found, strict=True))
    return [pages[key] for key in keys]


async def versions_of_documents(
    session: AsyncSession, document_ids: Sequence[uuid.UUID]
) -> list[list[Row[Any]]]:
    """Newest first, as rows (see DOCUMENT_FIELDS). Only asked for documents the caller was
    allowed to load."""
    single, parameters = ids_parameters(document_ids)
    rows = await fetch_rows(session, VERSIONS_OF_DOCUMENTS[single], parameters)
    return grouped(document_ids, rows, key=lambda version: version.document_id)


async def shares_of_documents(
    session: AsyncSession, document_ids: Sequence[uuid.UUID]
) -> list[list[DocumentShare]]:
    rows = (
        await session.scalars(
            select(DocumentShare)
            .where(DocumentShare.document_id.in_(set(document_ids)))
            .order_by(DocumentShare.document_id, DocumentShare.created_at)
        )
    ).all()
    return grouped(document_ids, rows, key=lambda share: share.document_id)


async def permissions_on(
    session: AsyncSession, document_ids: Sequence[uuid.UUID], *, principal: Principal | None
) -> list[Permission | None]:
    return await access.permissions_on(session, principal, document_ids)


async def visible_to(
    session: AsyncSession, *, principal: Principal | None, document_id: uuid.UUID
) -> Document | None:
    """The document, in the trash or not, if the caller may read it: who hears of a change."""
    return await session.scalar(
        select(Document).where(
            Document.id == document_id, access.permitted(principal, Permission.READ)
        )
    )


async def reindex(session: AsyncSession, settings: ContentSettings, batch: int = 500) -> int:
    """Rebuild the search vector of every document (after the search language changed)."""
    vector = weighted_vector(
        settings.search_language,
        title=Document.title,
        tags=func.array_to_string(Document.tags, " "),
        metadata=Document.attributes,
        description=Document.description,
        body=Document.body_text,
    )
    done, last = 0, None
    while True:
        stmt = select(Document.id).order_by(Document.id).limit(batch)
        if last is not None:
            stmt = stmt.where(Document.id > last)
        ids = list((await session.scalars(stmt)).all())
        if not ids:
            return done
        await session.execute(
            update(Document)
            .where(Document.id.in_(ids))
            .values(search_vector=vector)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        done, last = done + len(ids), ids[-1]
