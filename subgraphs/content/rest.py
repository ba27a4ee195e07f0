"""Content's REST routes for legacy clients: thin translations into service calls.

Reads take the caller when there is one (an anonymous caller sees nothing); writes need
a signed-in caller. A document the caller may not read answers 404, like a missing one.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from subgraphs.common.errors import problem
from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from subgraphs.common.rest import PROBLEM_JSON, Caller, Client, CursorPage, Session, SignedIn
from subgraphs.content import multipart
from subgraphs.content.models import DocumentStatus, Permission, Visibility
from subgraphs.content.service import audit, documents, files, search, sharing
from subgraphs.content.service.resources import Resources

router = APIRouter(tags=["documents"])


def _resources(request: Request) -> Resources:
    return Resources.of(request.app.state.settings, request.app.state.redis)


Content = Annotated[Resources, Depends(_resources)]


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    filename: str
    media_type: str
    size: int
    sha256: str
    created_by: uuid.UUID
    created_at: datetime


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str
    type: str
    tags: list[str]
    metadata: dict[str, Any] = Field(validation_alias="attributes")
    status: DocumentStatus
    owner_id: uuid.UUID
    organization_id: uuid.UUID | None
    visibility: Visibility
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    latest_version: VersionOut | None = None


class DocumentIn(BaseModel):
    title: str = Field(min_length=1, max_length=documents.MAX_TITLE)
    description: str = Field(default="", max_length=documents.MAX_DESCRIPTION)
    type: str | None = Field(default=None, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=documents.MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: DocumentStatus = DocumentStatus.DRAFT
    organization_id: uuid.UUID | None = None
    visibility: Visibility = Visibility.PRIVATE


class DocumentPatch(BaseModel):
    """Fields left out stay as they are; `version` is the one the change was made against."""

    version: int
    title: str | None = Field(default=None, min_length=1, max_length=documents.MAX_TITLE)
    description: str | None = Field(default=None, max_length=documents.MAX_DESCRIPTION)
    type: str | None = Field(default=None, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=documents.MAX_TAGS)
    metadata: dict[str, Any] | None = None
    status: DocumentStatus | None = None
    organization_id: uuid.UUID | None = None
    visibility: Visibility | None = None


class ShareIn(BaseModel):
    permission: Permission
    user_id: uuid.UUID | None = None
    role: str | None = Field(default=None, max_length=64)
    expires_at: datetime | None = None


class ShareOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID | None
    role: str | None
    permission: Permission
    expires_at: datetime | None
    created_at: datetime


class SearchHitOut(BaseModel):
    document: DocumentOut
    rank: float
    snippet: str


class SearchOut(BaseModel):
    items: list[SearchHitOut]
    next_cursor: str | None
    mode: str


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    id: uuid.UUID
    document_id: uuid.UUID | None
    action: str
    actor_id: uuid.UUID | None
    request_id: str | None
    at: datetime
    changes: dict[str, Any]
    prev_hash: str
    hash: str


class DocumentTypeOut(BaseModel):
    key: str
    label: str
    description: str
    metadata_schema: dict[str, Any]


def _iso_8601(value: object) -> object:
    # Pydantic would also read "0.5" as seconds since 1970; the API promises ISO 8601.
    if isinstance(value, str) and not ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time with a time zone")
    return value


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
DateTimeParam = Annotated[AwareDatetime | None, BeforeValidator(_iso_8601)]


class Filters:
    """The list and search filters, as query parameters."""

    def __init__(
        self,
        type: str | None = Query(None, max_length=64),
        tag: list[str] = Query([], description="Documents with all of these tags."),
        status: DocumentStatus | None = None,
        owner_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
        created_after: DateTimeParam = None,
        created_before: DateTimeParam = None,
        updated_after: DateTimeParam = None,
        updated_before: DateTimeParam = None,
        trashed: bool = False,
    ) -> None:
        self.filter = documents.DocumentFilter(
            type=type,
            tags=tuple(tag),
            status=status,
            owner_id=owner_id,
            organization_id=organization_id,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            trashed=trashed,
        )


async def _with_latest_versions(session: Any, rows: list[Any]) -> list[DocumentOut]:
    """Documents with their newest version: one more query for the whole list."""
    versions = await documents.versions_of_documents(session, [row.id for row in rows])
    return [
        DocumentOut.model_validate(row).model_copy(
            update={"latest_version": VersionOut.model_validate(found[0]) if found else None}
        )
        for row, found in zip(rows, versions, strict=True)
    ]


async def _one(session: Any, document: Any) -> DocumentOut:
    return (await _with_latest_versions(session, [document]))[0]


@router.get("/documents", response_model=CursorPage[DocumentOut])
async def list_documents(
    session: Session,
    caller: Caller,
    filters: Annotated[Filters, Depends()],
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = Query(None, max_length=200),
) -> CursorPage[DocumentOut]:
    page = await documents.list_documents(
        session, principal=caller, first=limit, after=cursor, filter=filters.filter
    )
    items = await _with_latest_versions(session, page.items)
    return CursorPage[DocumentOut](
        items=items, next_cursor=page.end_cursor if page.has_next_page else None
    )


@router.post("/documents", status_code=201, response_model=DocumentOut)
async def create_document(
    body: DocumentIn, session: Session, content: Content, caller: SignedIn, client: Client
) -> DocumentOut:
    document = await documents.create_document(
        session,
        content,
        principal=caller,
        client=client,
        title=body.title,
        description=body.description,
        type=body.type,
        tags=body.tags,
        metadata=body.metadata,
        status=body.status,
        organization_id=body.organization_id,
        visibility=body.visibility,
    )
    return DocumentOut.model_validate(document)


@router.get("/documents/search", response_model=SearchOut)
async def search_documents(
    session: Session,
    content: Content,
    caller: Caller,
    filters: Annotated[Filters, Depends()],
    q: str = Query(min_length=1, max_length=search.MAX_QUERY),
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = Query(None, max_length=300),
) -> SearchOut:
    results = await search.search_documents(
        session,
        content,
        principal=caller,
        query=q,
        filter=filters.filter,
        first=limit,
        after=cursor,
    )
    return SearchOut(
        items=[
            SearchHitOut(
                document=DocumentOut.model_validate(document), rank=hit.rank, snippet=hit.snippet
            )
            for hit, document in results.hits
        ],
        next_cursor=results.end_cursor if results.has_next_page else None,
        mode=results.mode,
    )


@router.get("/documents/types", response_model=list[DocumentTypeOut])
async def document_types(content: Content) -> list[DocumentTypeOut]:
    return [
        DocumentTypeOut(
            key=kind.key,
            label=kind.label,
            description=kind.description,
            metadata_schema=kind.metadata_schema,
        )
        for kind in content.document_types.values()
    ]


def _get_only(path: str) -> None:
    """Other methods on `path` answer 405, as for any GET-only path.

    Without this, PATCH /documents/search would reach PATCH /documents/{document_id} and
    answer 422 for the id "search", as if the method existed there.
    """

    async def method_not_allowed() -> JSONResponse:
        return JSONResponse(
            problem(405, "Method Not Allowed"),
            status_code=405,
            media_type=PROBLEM_JSON,
            headers={"Allow": "GET"},
        )

    router.add_api_route(
        path,
        method_not_allowed,
        methods=["POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )


_get_only("/documents/search")
_get_only("/documents/types")


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: uuid.UUID, session: Session, caller: Caller) -> DocumentOut:
    document = await documents.get_document(session, principal=caller, document_id=document_id)
    return await _one(session, document)


@router.patch("/documents/{document_id}", response_model=DocumentOut)
async def update_document(
    document_id: uuid.UUID,
    body: DocumentPatch,
    session: Session,
    content: Content,
    caller: SignedIn,
    client: Client,
) -> DocumentOut:
    given = body.model_dump(exclude_unset=True, exclude={"version"})
    document = await documents.update_document(
        session,
        content,
        principal=caller,
        client=client,
        document_id=document_id,
        expected_version=body.version,
        changes=documents.DocumentChanges(**given),
    )
    return await _one(session, document)


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(
    document_id: uuid.UUID,
    session: Session,
    content: Content,
    caller: SignedIn,
    client: Client,
    version: int | None = Query(None, description="Refuse if the document changed since."),
    permanent: bool = Query(False, description="Purge a document already in the trash."),
) -> Response:
    if permanent:
        await documents.purge_document(
            session, content, principal=caller, client=client, document_id=document_id
        )
    else:
        await documents.delete_document(
            session,
            content,
            principal=caller,
            client=client,
            document_id=document_id,
            expected_version=version,
        )
    return Response(status_code=204)


@router.post("/documents/{document_id}/restore", response_model=DocumentOut)
async def restore_document(
    document_id: uuid.UUID, session: Session, content: Content, caller: SignedIn, client: Client
) -> DocumentOut:
    document = await documents.restore_document(
        session, content, principal=caller, client=client, document_id=document_id
    )
    return await _one(session, document)


@router.get("/documents/{document_id}/versions", response_model=list[VersionOut])
async def list_versions(
    document_id: uuid.UUID, session: Session, caller: Caller
) -> list[VersionOut]:
    rows = await files.list_versions(session, principal=caller, document_id=document_id)
    return [VersionOut.model_validate(row) for row in rows]


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/documents/{document_id}/versions",
    status_code=201,
    response_model=VersionOut,
    openapi_extra=UPLOAD_BODY,
    summary="Upload the next version (multipart form field `file`), streamed",
)
async def upload_version(
    document_id: uuid.UUID,
    request: Request,
    session: Session,
    content: Content,
    caller: SignedIn,
    client: Client,
) -> VersionOut:
    # The form's boundaries and part headers take a little of the declared length.
    declared = request.headers.get("content-length", "")
    declared_size = max(0, int(declared) - 16 * 1024) if declared.isdigit() else None
    part = await multipart.file_part(request)
    version = await files.upload_version(
        session,
        content,
        principal=caller,
        client=client,
        document_id=document_id,
        filename=part.filename,
        media_type=part.media_type,
        chunks=part.chunks,
        declared_size=declared_size,
    )
    return VersionOut.model_validate(version)


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
async def download(
    document_id: uuid.UUID,
    session: Session,
    content: Content,
    caller: Caller,
    client: Client,
    version: int | None = Query(None, ge=1, le=2**31 - 1),
) -> StreamingResponse:
    found, chunks = await files.open_version(
        session, content, principal=caller, client=client, document_id=document_id, number=version
    )
    return StreamingResponse(
        chunks,
        media_type=found.media_type,
        headers={
            "Content-Length": str(found.size),
            "ETag": f'"{found.sha256}"',
            "Digest": f"sha-256={found.sha256}",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.filename)}",
            "X-Document-Version": str(found.number),
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/documents/{document_id}/shares", response_model=list[ShareOut])
async def list_shares(document_id: uuid.UUID, session: Session, caller: SignedIn) -> list[ShareOut]:
    rows = await sharing.list_shares(session, principal=caller, document_id=document_id)
    return [ShareOut.model_validate(row) for row in rows]


@router.post("/documents/{document_id}/shares", status_code=201, response_model=ShareOut)
async def share_document(
    document_id: uuid.UUID,
    body: ShareIn,
    session: Session,
    content: Content,
    caller: SignedIn,
    client: Client,
) -> ShareOut:
    share = await sharing.share_document(
        session,
        content,
        principal=caller,
        client=client,
        document_id=document_id,
        permission=body.permission,
        user_id=body.user_id,
        role=body.role,
        expires_at=body.expires_at,
    )
    return ShareOut.model_validate(share)


@router.delete("/documents/{document_id}/shares/{share_id}", status_code=204)
async def unshare_document(
    document_id: uuid.UUID,
    share_id: uuid.UUID,
    session: Session,
    content: Content,
    caller: SignedIn,
    client: Client,
) -> Response:
    await sharing.unshare_document(
        session,
        content,
        principal=caller,
        client=client,
        document_id=document_id,
        share_id=share_id,
    )
    return Response(status_code=204)


@router.get("/documents/{document_id}/audit", response_model=CursorPage[AuditEntryOut])
async def audit_trail(
    document_id: uuid.UUID,
    session: Session,
    caller: SignedIn,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: int | None = Query(None, ge=0),
) -> CursorPage[AuditEntryOut]:
    await documents.lock_document(session, caller, document_id, Permission.MANAGE, lock=False)
    page: Page[Any] = await audit.trail(session, document_id=document_id, first=limit, after=cursor)
    return CursorPage.of(page, AuditEntryOut)
