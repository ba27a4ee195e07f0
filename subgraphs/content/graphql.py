"""Content's part of the graph: `Document` and what hangs off it, `User.documents`, search,
typed mutation errors, the audit trail, and `documentChanged`.

Every read goes through a service function or loader bound to the caller
(`principal=ctx.principal`), so the access rules apply inside the one query.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy.engine import Row
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField

from subgraphs.common.auth import require_user
from subgraphs.common.errors import BadInput, Forbidden, HubError, NotFound, Unauthenticated
from subgraphs.common.graphql import (
    BySelection,
    HubInfo,
    federated_schema,
    id_of,
    optional_id_of,
    parse_id,
)
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, Connection, PageInfo
from subgraphs.content import errors, models
from subgraphs.content.service import access, audit, documents, events, files, search, sharing
from subgraphs.content.service.resources import Resources
from subgraphs.content.settings import ContentSettings
from subgraphs.content.storage import CHUNK_SIZE

federated = strawberry.federation

DocumentStatus = strawberry.enum(models.DocumentStatus, name="DocumentStatus")
Visibility = strawberry.enum(models.Visibility, name="Visibility")
Permission = strawberry.enum(models.Permission, name="Permission")


def resources_of(info: HubInfo) -> Resources:
    settings = info.context.settings
    assert isinstance(settings, ContentSettings)
    return Resources.of(settings, info.context.redis)


# --- types ------------------------------------------------------------------------------


@federated.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)

    @strawberry.field(
        description="Documents this user owns that the caller may read, newest first."
    )
    async def documents(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: DocumentFilter | None = None,
    ) -> Connection[Document]:
        key = documents.OwnerPageKey(
            parent_id=parse_id(self.id),
            first=first,
            after=after,
            filter=filter.parsed() if filter else documents.DocumentFilter(),
        )
        page = await info.context.loader(
            documents.documents_of_owners, principal=info.context.principal
        ).load(key)
        return Connection.of(page, Document.from_model)


def _selected_on_document(selections: list[Any]) -> frozenset[str]:
    """The names of the fields selected on `Document` under `_entities` (in fragments too)."""
    names: set[str] = set()
    _walk_entities(selections, False, names)
    return frozenset(names)


_wanted_with_entities = BySelection(
    lambda fields: documents.Wanted.of(_selected_on_document(fields))
)


# Recursion through module functions, not a closure calling itself: such a closure is a
# reference cycle, left to the garbage collector at the end of every request.
def _walk_entities(items: list[Any], on_document: bool, names: set[str]) -> None:
    for item in items:
        if isinstance(item, SelectedField):
            if on_document:
                names.add(item.name)
            else:  # `_entities` itself
                _walk_entities(item.selections, True, names)
        else:  # a fragment: its fields apply to Document unless it names another type
            condition = getattr(item, "type_condition", None)
            _walk_entities(item.selections, on_document and condition in (None, "Document"), names)


# The columns of its row that each field of `Document` reads. A list of documents loads only
# what its selection reads (and what a page's cursor needs); a selection naming a field not
# listed here (one added later, say) loads every column.
_COLUMNS_READ: dict[str, frozenset[str]] = {
    "__typename": frozenset(),
    "id": frozenset({"id"}),
    "title": frozenset({"title"}),
    "description": frozenset({"description"}),
    "type": frozenset({"type"}),
    "documentType": frozenset({"type"}),
    "tags": frozenset({"tags"}),
    "metadata": frozenset({"attributes"}),
    "status": frozenset({"status"}),
    "owner": frozenset({"owner_id"}),
    "organizationId": frozenset({"organization_id"}),
    "visibility": frozenset({"visibility"}),
    "version": frozenset({"version"}),
    "createdAt": frozenset({"created_at"}),
    "updatedAt": frozenset({"updated_at"}),
    "deletedAt": frozenset({"deleted_at"}),
    "versions": frozenset({"id"}),
    "latestVersion": frozenset({"id"}),
    "myPermission": frozenset({"id"}),
    "shares": frozenset({"id"}),
}


def _columns_read_by_fields(fields: list[Any]) -> frozenset[str] | None:
    """The columns the documents of the selected `Connection[Document]` fields will read
    (fragments included), or None when some selected field is not in `_COLUMNS_READ`. One
    field per time the operation names it (`documents { a } documents { b }`)."""
    columns: set[str] = set()
    selections = [item for field in fields for item in field.selections]
    return frozenset(columns) if _read_by_connection(selections, columns) else None


_columns_read_by_connection = BySelection(_columns_read_by_fields)


def _read_by_connection(selections: list[Any], columns: set[str]) -> bool:
    for item in selections:
        if isinstance(item, SelectedField):
            if item.name == "nodes" and not _read_by_document(item.selections, columns):
                return False  # pageInfo and __typename read no column
        elif not _read_by_connection(item.selections, columns):
            return False
    return True


def _read_by_document(selections: list[Any], columns: set[str]) -> bool:
    for item in selections:
        if isinstance(item, SelectedField):
            read = _COLUMNS_READ.get(item.name)
            if read is None:
                return False
            columns.update(read)
        elif not _read_by_document(item.selections, columns):
            return False
    return True


@strawberry.type(description="A kind of document this deployment knows, and its metadata schema.")
class DocumentType:
    key: str
    label: str
    description: str
    metadata_schema: JSON


@strawberry.type(description="One uploaded file of a document: immutable.")
class DocumentVersion:
    id: strawberry.ID
    document_id: strawberry.ID
    number: int
    filename: str
    media_type: str
    size: int = strawberry.field(description="Bytes.")
    sha256: str
    created_at: datetime
    created_by: User

    @classmethod
    def from_model(cls, version: models.DocumentVersion | Row[Any]) -> DocumentVersion:
        return cls(
            id=id_of(version.id),
            document_id=id_of(version.document_id),
            number=version.number,
            filename=version.filename,
            media_type=version.media_type,
            size=version.size,
            sha256=version.sha256,
            created_at=version.created_at,
            created_by=User(id=id_of(version.created_by)),
        )

    @strawberry.field(description="Where REST clients download it (with the caller's token).")
    def download_path(self) -> str:
        return f"/api/v1/documents/{self.document_id}/content?version={self.number}"


@strawberry.type(description="Access given to a user or to a role, until it expires.")
class DocumentShare:
    id: strawberry.ID
    document_id: strawberry.ID
    user: User | None
    role: str | None
    permission: Permission  # type: ignore[valid-type]
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, share: models.DocumentShare) -> DocumentShare:
        return cls(
            id=id_of(share.id),
            document_id=id_of(share.document_id),
            user=User(id=id_of(share.user_id)) if share.user_id else None,
            role=share.role,
            permission=share.permission,
            expires_at=share.expires_at,
            created_at=share.created_at,
        )


@federated.type(keys=["id"], description="A document, its metadata, files and sharing.")
class Document:
    id: strawberry.ID
    title: str
    description: str
    type: str
    tags: list[str]
    metadata: JSON
    status: DocumentStatus  # type: ignore[valid-type]
    owner: User
    organization_id: strawberry.ID | None
    visibility: Visibility  # type: ignore[valid-type]
    version: int = strawberry.field(
        description="Incremented by every change; updates name the version they read."
    )
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    # Set when `_entities` loaded them with the documents (see `resolve_reference`): the
    # fields below then answer without a loader, a coroutine and a task per document.
    preloaded: strawberry.Private[documents.Preloaded | None] = None

    @classmethod
    def from_model(
        cls, document: models.Document | Row[Any], preloaded: documents.Preloaded | None = None
    ) -> Document:
        if isinstance(document, models.Document):
            # An ORM instance is read now, while its session can still load what it holds.
            fields = {name: read(document) for name, read in _DOCUMENT_FIELDS.items()}
            return cls(**fields, preloaded=preloaded)
        # A row is immutable: its fields are converted when first read (see `_ReadFromRow`).
        # A page of 20 asks for a few fields of each; converting all 14 of every document
        # up front was ~4 µs a document, ~10 % of a list's CPU.
        lazy = object.__new__(cls)
        lazy.__dict__.update(_row=document, preloaded=preloaded)
        return lazy

    @classmethod
    async def resolve_reference(cls, info: HubInfo, id: strawberry.ID) -> Document | None:
        """One batch for all representations; what the operation selects of their versions
        and the caller's permission is loaded in that batch too (the same statements the
        field loaders would send, without their per-document overhead)."""
        found = await info.context.loader(
            documents.entities_by_ids,
            principal=info.context.principal,
            wanted=_wanted_with_entities(info),
        ).load(parse_id(id))
        return cls.from_model(found.document, found) if found else None

    @strawberry.field
    def document_type(self, info: HubInfo) -> DocumentType | None:
        kind = resources_of(info).document_types.get(self.type)
        if kind is None:  # a type since removed from the configuration
            return None
        return DocumentType(
            key=kind.key,
            label=kind.label,
            description=kind.description,
            metadata_schema=kind.metadata_schema,
        )

    @strawberry.field(
        graphql_type=list[DocumentVersion], description="File versions, newest first."
    )
    def versions(self, info: HubInfo) -> list[DocumentVersion] | Awaitable[list[DocumentVersion]]:
        if self.preloaded is not None and self.preloaded.versions is not None:
            return [DocumentVersion.from_model(row) for row in self.preloaded.versions]
        return self._versions(info)

    async def _versions(self, info: HubInfo) -> list[DocumentVersion]:
        rows = await info.context.loader(documents.versions_of_documents).load(uuid.UUID(self.id))
        return [DocumentVersion.from_model(row) for row in rows]

    @strawberry.field(
        graphql_type=DocumentVersion | None,
        description="The newest file version, or null before the first upload.",
    )
    def latest_version(
        self, info: HubInfo
    ) -> DocumentVersion | Awaitable[DocumentVersion | None] | None:
        if self.preloaded is not None and self.preloaded.versions is not None:
            rows = self.preloaded.versions
            return DocumentVersion.from_model(rows[0]) if rows else None
        return self._latest_version(info)

    async def _latest_version(self, info: HubInfo) -> DocumentVersion | None:
        rows = await info.context.loader(documents.versions_of_documents).load(uuid.UUID(self.id))
        return DocumentVersion.from_model(rows[0]) if rows else None

    @strawberry.field(
        graphql_type=Permission | None,
        description="The strongest permission the caller holds on it.",
    )
    def my_permission(
        self, info: HubInfo
    ) -> models.Permission | Awaitable[models.Permission | None] | None:
        if self.preloaded is not None and self.preloaded.permission is not documents.NOT_LOADED:
            return self.preloaded.permission
        return info.context.loader(documents.permissions_on, principal=info.context.principal).load(
            uuid.UUID(self.id)
        )

    @strawberry.field(description="Who it is shared with; shown to those who may manage it.")
    async def shares(self, info: HubInfo) -> list[DocumentShare]:
        id = uuid.UUID(self.id)
        permission = await info.context.loader(
            documents.permissions_on, principal=info.context.principal
        ).load(id)
        if permission is not models.Permission.MANAGE:
            return []
        rows = await info.context.loader(documents.shares_of_documents).load(id)
        return [DocumentShare.from_model(row) for row in rows]


# How each field of `Document` is read from its model or row (`Document.from_model`).
_DOCUMENT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda document: id_of(document.id),
    "title": attrgetter("title"),
    "description": attrgetter("description"),
    "type": attrgetter("type"),
    "tags": lambda document: list(document.tags),
    "metadata": attrgetter("attributes"),
    "status": attrgetter("status"),
    "owner": lambda document: User(id=id_of(document.owner_id)),
    "organization_id": lambda document: optional_id_of(document.organization_id),
    "visibility": attrgetter("visibility"),
    "version": attrgetter("version"),
    "created_at": attrgetter("created_at"),
    "updated_at": attrgetter("updated_at"),
    "deleted_at": attrgetter("deleted_at"),
}


class _ReadFromRow:
    """A field of `Document` made from a row, converted on its first read and then held by
    the document (an instance's own attribute comes before a descriptor without `__set__`).

    A descriptor rather than `__getattr__`: Python calls that only after a failed lookup,
    which costs ~0.7 µs a field, as much as the conversion; three fields of a page of 20
    documents made it ~6 % of the list's CPU."""

    __slots__ = ("name", "read")

    def __init__(self, name: str, read: Callable[[Any], Any]) -> None:
        self.name = name
        self.read = read

    def __get__(self, document: Document | None, owner: type | None = None) -> Any:
        if document is None:
            return self
        row = document.__dict__.get("_row")
        if row is None:  # made from its fields, and this one deleted since
            raise AttributeError(f"'Document' object has no attribute {self.name!r}")
        value = document.__dict__[self.name] = self.read(row)
        return value


# After the class is made: Strawberry and dataclasses read its fields when decorating it.
for _name, _read in _DOCUMENT_FIELDS.items():
    setattr(Document, _name, _ReadFromRow(_name, _read))

# The column each field of `Document` is made from, where it is not the field's name.
_COLUMN_OF_FIELD = {"metadata": "attributes", "owner": "owner_id"}


@functools.lru_cache(maxsize=256)
def _from_selected_row(row_class: type) -> Callable[[Row[Any]], Document]:
    """How to make a `Document` of a row whose columns the selection chose
    (`_columns_read_by_connection`): each field the row holds will be read, so it is
    converted when the document is made, without a descriptor's call per field on its
    first read (~8 % of a list of 20 documents, measured side by side). Fields the row
    lacks stay as `from_model` leaves them. One per row class, i.e. per statement shape."""
    fields = tuple(
        (name, read)
        for name, read in _DOCUMENT_FIELDS.items()
        if _COLUMN_OF_FIELD.get(name, name) in row_class._fields  # type: ignore[attr-defined]
    )
    new = object.__new__

    def from_selected_row(row: Row[Any]) -> Document:
        document = new(Document)
        converted = document.__dict__
        converted["_row"] = row
        converted["preloaded"] = None
        for name, read in fields:
            converted[name] = read(row)
        return document

    return from_selected_row


@strawberry.type
class SearchHit:
    document: Document
    rank: float
    snippet: str = strawberry.field(
        description="Matching passages, HTML-escaped, matches wrapped in <mark>."
    )


@strawberry.enum
class SearchMode(enum.Enum):
    FULLTEXT = "fulltext"
    FUZZY = "fuzzy"


@strawberry.type
class SearchResults:
    nodes: list[SearchHit]
    page_info: PageInfo
    mode: SearchMode = strawberry.field(
        description="FUZZY when full-text search found nothing and titles were matched by "
        "similarity (typos)."
    )


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    seq: int
    document_id: strawberry.ID | None
    action: str
    actor: User | None
    request_id: str | None
    at: datetime
    changes: JSON
    prev_hash: str
    hash: str

    @classmethod
    def from_model(cls, entry: models.AuditEntry) -> AuditEntry:
        return cls(
            id=id_of(entry.id),
            seq=entry.seq,
            document_id=optional_id_of(entry.document_id),
            action=entry.action,
            actor=User(id=id_of(entry.actor_id)) if entry.actor_id else None,
            request_id=entry.request_id,
            at=entry.at,
            changes=entry.changes,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


@strawberry.type
class AuditVerification:
    ok: bool
    checked: int
    first_broken_seq: int | None
    first_broken_id: strawberry.ID | None
    reason: str | None
    last_hash: str | None = strawberry.field(
        description="The newest entry's hash: record it elsewhere to detect a cut-off tail."
    )


@strawberry.enum
class DocumentChangeAction(enum.Enum):
    CREATED = audit.CREATED
    UPDATED = audit.UPDATED
    DELETED = audit.DELETED
    RESTORED = audit.RESTORED
    VERSION_ADDED = audit.VERSION_ADDED
    SHARED = audit.SHARED
    UNSHARED = audit.UNSHARED


@strawberry.type
class DocumentChange:
    document_id: strawberry.ID
    action: DocumentChangeAction
    version: int
    document: Document | None = strawberry.field(
        description="The document now; null once it is in the trash."
    )


# --- typed mutation errors --------------------------------------------------------------


@strawberry.interface(description="A mutation refused for a reason the client can act on.")
class MutationError:
    message: str
    code: str


@strawberry.type
class InvalidInput(MutationError):
    field: str | None


@strawberry.type(description="No such document, or none the caller may see.")
class DocumentNotFound(MutationError):
    pass


@strawberry.type
class PermissionDenied(MutationError):
    pass


@strawberry.type(description="The document changed since the version the update names.")
class VersionConflict(MutationError):
    current_version: int


@strawberry.type(description="The file was refused (size or media type); nothing was kept.")
class UploadRejected(MutationError):
    limit: int | None
    media_type: str | None


@strawberry.type
class PurgedDocument:
    id: strawberry.ID


T = TypeVar("T")


def typed_error(error: HubError, allowed: tuple[type, ...]) -> Any:
    """The GraphQL type for a refusal the mutation declares; anything else is raised."""
    typed: Any
    if isinstance(error, Unauthenticated):
        raise error
    if isinstance(error, errors.VersionConflict):
        typed = VersionConflict(
            message=error.message,
            code=error.code,
            current_version=int(error.details.get("current_version", 0)),
        )
    elif isinstance(error, errors.PayloadTooLarge | errors.UnsupportedMediaType):
        typed = UploadRejected(
            message=error.message,
            code=error.code,
            limit=error.details.get("limit"),
            media_type=error.details.get("media_type"),
        )
    elif isinstance(error, NotFound):
        typed = DocumentNotFound(message=error.message, code=error.code)
    elif isinstance(error, Forbidden):
        typed = PermissionDenied(message=error.message, code=error.code)
    elif isinstance(error, BadInput):
        typed = InvalidInput(
            message=error.message, code=error.code, field=error.details.get("field")
        )
    else:
        raise error
    if not isinstance(typed, allowed):
        raise error
    return typed


async def attempt(info: HubInfo, work: Callable[[], Awaitable[T]], *allowed: type) -> T | Any:
    """Run a mutation for a signed-in caller (checked first, whatever the input); refusals
    the mutation declares become its typed errors."""
    info.context.user  # noqa: B018 — UNAUTHENTICATED before anything else
    try:
        return await work()
    except HubError as error:
        return typed_error(error, allowed)


CreateDocumentResult = Annotated[Document | InvalidInput, strawberry.union("CreateDocumentResult")]
UpdateDocumentResult = Annotated[
    Document | InvalidInput | DocumentNotFound | PermissionDenied | VersionConflict,
    strawberry.union("UpdateDocumentResult"),
]
DeleteDocumentResult = Annotated[
    Document | DocumentNotFound | PermissionDenied | VersionConflict,
    strawberry.union("DeleteDocumentResult"),
]
RestoreDocumentResult = Annotated[
    Document | DocumentNotFound | PermissionDenied, strawberry.union("RestoreDocumentResult")
]
PurgeDocumentResult = Annotated[
    PurgedDocument | DocumentNotFound | PermissionDenied, strawberry.union("PurgeDocumentResult")
]
ShareDocumentResult = Annotated[
    DocumentShare | InvalidInput | DocumentNotFound | PermissionDenied,
    strawberry.union("ShareDocumentResult"),
]
UnshareDocumentResult = Annotated[
    Document | DocumentNotFound | PermissionDenied, strawberry.union("UnshareDocumentResult")
]
UploadDocumentVersionResult = Annotated[
    DocumentVersion | InvalidInput | DocumentNotFound | PermissionDenied | UploadRejected,
    strawberry.union("UploadDocumentVersionResult"),
]


# --- inputs -----------------------------------------------------------------------------


@strawberry.input
class DocumentFilter:
    type: str | None = None
    tags: list[str] | None = strawberry.field(
        default=None, description="Documents with all of them."
    )
    status: DocumentStatus | None = None  # type: ignore[valid-type]
    owner_id: strawberry.ID | None = None
    organization_id: strawberry.ID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    trashed: bool = strawberry.field(
        default=False, description="The trash instead: deleted documents the caller manages."
    )

    def parsed(self) -> documents.DocumentFilter:
        return documents.DocumentFilter(
            type=self.type,
            tags=tuple(self.tags or ()),
            status=models.DocumentStatus(self.status) if self.status else None,
            owner_id=parse_id(self.owner_id, "ownerId") if self.owner_id else None,
            organization_id=parse_id(self.organization_id, "organizationId")
            if self.organization_id
            else None,
            created_after=self.created_after,
            created_before=self.created_before,
            updated_after=self.updated_after,
            updated_before=self.updated_before,
            trashed=self.trashed,
        )


@strawberry.input
class CreateDocumentInput:
    title: str
    description: str = ""
    type: str | None = strawberry.field(default=None, description="Default: `general`.")
    tags: list[str] = strawberry.field(default_factory=list)
    metadata: JSON | None = None
    status: DocumentStatus = models.DocumentStatus.DRAFT  # type: ignore[valid-type]
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="One of the caller's organizations."
    )
    visibility: Visibility = models.Visibility.PRIVATE  # type: ignore[valid-type]


@strawberry.input(description="Fields left out stay as they are.")
class UpdateDocumentInput:
    id: strawberry.ID
    version: int = strawberry.field(description="The version the change was made against.")
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    type: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    status: DocumentStatus | None = strawberry.UNSET  # type: ignore[valid-type]
    organization_id: strawberry.ID | None = strawberry.UNSET
    visibility: Visibility | None = strawberry.UNSET  # type: ignore[valid-type]

    def changes(self) -> documents.DocumentChanges:
        given = {
            name: value
            for name, value in vars(self).items()
            if name not in ("id", "version") and value is not strawberry.UNSET
        }
        if given.get("organization_id") is not None:
            given["organization_id"] = parse_id(given["organization_id"], "organizationId")
        for required in ("title", "type", "status", "visibility"):
            if required in given and given[required] is None:
                raise BadInput(f"{required} cannot be null", field=required)
        return documents.DocumentChanges(**given)


@strawberry.input
class ShareDocumentInput:
    document_id: strawberry.ID
    permission: Permission  # type: ignore[valid-type]
    user_id: strawberry.ID | None = None
    role: str | None = None
    expires_at: datetime | None = None


# --- operations -------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="A document the caller may read, or null (also when missing).")
    async def document(self, info: HubInfo, id: strawberry.ID) -> Document | None:
        document = await info.context.loader(
            documents.documents_by_ids, principal=info.context.principal
        ).load(parse_id(id))
        return Document.from_model(document) if document else None

    @strawberry.field(description="Documents the caller may read, newest first.")
    async def documents(
        self,
        info: HubInfo,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: DocumentFilter | None = None,
    ) -> Connection[Document]:
        parsed = filter.parsed() if filter else documents.DocumentFilter()
        columns = _columns_read_by_connection(info)
        async with info.context.reader() as session:
            page = await documents.list_documents(
                session,
                principal=info.context.principal,
                first=first,
                after=after,
                filter=parsed,
                columns=columns,
            )
        if columns is None or not page.items:
            return Connection.of(page, Document.from_model)
        return Connection.of(page, _from_selected_row(page.items[0].__class__))

    @strawberry.field(description="Full-text search, best first; typo-tolerant on titles.")
    async def search_documents(
        self,
        info: HubInfo,
        query: str,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: DocumentFilter | None = None,
    ) -> SearchResults:
        parsed = filter.parsed() if filter else documents.DocumentFilter()
        async with info.context.reader() as session:
            results = await search.search_documents(
                session,
                resources_of(info),
                principal=info.context.principal,
                query=query,
                filter=parsed,
                first=first,
                after=after,
            )
        return SearchResults(
            nodes=[
                SearchHit(
                    document=Document.from_model(document), rank=hit.rank, snippet=hit.snippet
                )
                for hit, document in results.hits
            ],
            page_info=PageInfo(has_next_page=results.has_next_page, end_cursor=results.end_cursor),
            mode=SearchMode(results.mode),
        )

    @strawberry.field(description="The document types of this deployment.")
    def document_types(self, info: HubInfo) -> list[DocumentType]:
        return [
            DocumentType(
                key=kind.key,
                label=kind.label,
                description=kind.description,
                metadata_schema=kind.metadata_schema,
            )
            for kind in resources_of(info).document_types.values()
        ]

    @federated.field(
        authenticated=True,
        description="The audit trail, oldest first: of one document (for those who manage "
        "it), or all of it (administrators).",
    )
    async def audit_trail(
        self,
        info: HubInfo,
        document_id: strawberry.ID | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[AuditEntry]:
        caller = info.context.user
        target = parse_id(document_id, "documentId") if document_id else None
        async with info.context.session() as session:
            if target is None or not access.is_admin(caller):
                await audit_access(session, caller, target)
            page = await audit.trail(session, document_id=target, first=first, after=_seq(after))
        return Connection.of(page, AuditEntry.from_model)

    @federated.field(
        requires_scopes=[["admin"]],
        description="Walk the whole audit chain; report the first entry that does not hold.",
    )
    async def verify_audit_trail(self, info: HubInfo) -> AuditVerification:
        async with info.context.session() as session:
            result = await audit.verify(session, principal=info.context.principal)
        return AuditVerification(
            ok=result.ok,
            checked=result.checked,
            first_broken_seq=result.first_broken_seq,
            first_broken_id=optional_id_of(result.first_broken_id),
            reason=result.reason,
            last_hash=result.last_hash,
        )


async def audit_access(session: Any, caller: Any, document_id: uuid.UUID | None) -> None:
    from subgraphs.common.auth import require_scope

    if document_id is None:
        require_scope(caller, "admin")
        return
    await documents.lock_document(
        session, caller, document_id, models.Permission.MANAGE, lock=False
    )


def _seq(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise BadInput(f"invalid cursor: {after!r}", field="after")
    return int(after)


async def upload_chunks(upload: Any) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_SIZE):
        yield chunk


@strawberry.type
class Mutation:
    @federated.mutation(authenticated=True, description="A new document owned by the caller.")
    async def create_document(
        self, info: HubInfo, input: CreateDocumentInput
    ) -> CreateDocumentResult:
        async def work() -> Document:
            async with info.context.session() as session:
                document = await documents.create_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    title=input.title,
                    description=input.description,
                    type=input.type,
                    tags=input.tags,
                    metadata=input.metadata,
                    status=models.DocumentStatus(input.status),
                    organization_id=parse_id(input.organization_id, "organizationId")
                    if input.organization_id
                    else None,
                    visibility=models.Visibility(input.visibility),
                )
            return Document.from_model(document)

        return await attempt(info, work, InvalidInput)

    @federated.mutation(
        authenticated=True, description="Change fields; refused if `version` is stale."
    )
    async def update_document(
        self, info: HubInfo, input: UpdateDocumentInput
    ) -> UpdateDocumentResult:
        async def work() -> Document:
            async with info.context.session() as session:
                document = await documents.update_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(input.id),
                    expected_version=input.version,
                    changes=input.changes(),
                )
            return Document.from_model(document)

        return await attempt(
            info, work, InvalidInput, DocumentNotFound, PermissionDenied, VersionConflict
        )

    @federated.mutation(authenticated=True, description="Move to the trash (restorable).")
    async def delete_document(
        self, info: HubInfo, id: strawberry.ID, version: int | None = None
    ) -> DeleteDocumentResult:
        async def work() -> Document:
            async with info.context.session() as session:
                document = await documents.delete_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(id),
                    expected_version=version,
                )
            return Document.from_model(document)

        return await attempt(info, work, DocumentNotFound, PermissionDenied, VersionConflict)

    @federated.mutation(authenticated=True, description="Take a document out of the trash.")
    async def restore_document(self, info: HubInfo, id: strawberry.ID) -> RestoreDocumentResult:
        async def work() -> Document:
            async with info.context.session() as session:
                document = await documents.restore_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(id),
                )
            return Document.from_model(document)

        return await attempt(info, work, DocumentNotFound, PermissionDenied)

    @federated.mutation(
        authenticated=True, description="Remove a document in the trash for good, files too."
    )
    async def purge_document(self, info: HubInfo, id: strawberry.ID) -> PurgeDocumentResult:
        async def work() -> PurgedDocument:
            document_id = parse_id(id)
            async with info.context.session() as session:
                await documents.purge_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=document_id,
                )
            return PurgedDocument(id=id_of(document_id))

        return await attempt(info, work, DocumentNotFound, PermissionDenied)

    @federated.mutation(
        authenticated=True,
        description="Share with a user or a role; sharing again replaces the grant.",
    )
    async def share_document(self, info: HubInfo, input: ShareDocumentInput) -> ShareDocumentResult:
        async def work() -> DocumentShare:
            async with info.context.session() as session:
                share = await sharing.share_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(input.document_id, "documentId"),
                    permission=models.Permission(input.permission),
                    user_id=parse_id(input.user_id, "userId") if input.user_id else None,
                    role=input.role,
                    expires_at=input.expires_at,
                )
            return DocumentShare.from_model(share)

        return await attempt(info, work, InvalidInput, DocumentNotFound, PermissionDenied)

    @federated.mutation(authenticated=True)
    async def unshare_document(
        self, info: HubInfo, document_id: strawberry.ID, share_id: strawberry.ID
    ) -> UnshareDocumentResult:
        async def work() -> Document:
            async with info.context.session() as session:
                document = await sharing.unshare_document(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(document_id, "documentId"),
                    share_id=parse_id(share_id, "shareId"),
                )
            return Document.from_model(document)

        return await attempt(info, work, DocumentNotFound, PermissionDenied)

    @federated.mutation(
        authenticated=True,
        description="Upload a file (GraphQL multipart request) as the document's next version.",
    )
    async def upload_document_version(
        self, info: HubInfo, document_id: strawberry.ID, file: Upload
    ) -> UploadDocumentVersionResult:
        async def work() -> DocumentVersion:
            if not hasattr(file, "read"):
                raise BadInput("send the file as a multipart request part", field="file")
            async with info.context.session() as session:
                version = await files.upload_version(
                    session,
                    resources_of(info),
                    principal=info.context.principal,
                    client=info.context.client,
                    document_id=parse_id(document_id, "documentId"),
                    filename=getattr(file, "filename", None),
                    media_type=getattr(file, "content_type", None),
                    chunks=upload_chunks(file),
                    declared_size=getattr(file, "size", None),
                )
            return DocumentVersion.from_model(version)

        return await attempt(
            info, work, InvalidInput, DocumentNotFound, PermissionDenied, UploadRejected
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Changes to the documents the caller may read (one of them, or all).",
    )
    async def document_changed(
        self, info: HubInfo, document_id: strawberry.ID | None = None
    ) -> AsyncGenerator[DocumentChange, None]:
        caller = require_user(info.context.principal)
        wanted = parse_id(document_id, "documentId") if document_id else None
        async for change in events.changes(info.context.redis):
            if wanted is not None and change.document_id != wanted:
                continue
            async with info.context.session() as session:
                visible = await documents.visible_to(
                    session, principal=caller, document_id=change.document_id
                )
            if visible is None:
                continue
            info.context.clear_loaders()  # each event is answered with what is true now
            yield DocumentChange(
                document_id=id_of(change.document_id),
                action=DocumentChangeAction(change.action),
                version=change.version,
                document=Document.from_model(visible) if visible.deleted_at is None else None,
            )


schema = federated_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[
        Document,
        User,
        InvalidInput,
        DocumentNotFound,
        PermissionDenied,
        VersionConflict,
        UploadRejected,
    ],
)
