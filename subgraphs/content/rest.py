"""Content's REST routes for legacy clients: thin translations into `service` calls."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from subgraphs.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from subgraphs.common.rest import CursorPage, Session
from subgraphs.content import service

router = APIRouter(tags=["documents"])


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    owner_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class DocumentIn(BaseModel):
    title: str = Field(min_length=1, max_length=service.MAX_TITLE)
    owner_id: uuid.UUID


@router.post("/documents", status_code=201, response_model=DocumentOut)
async def create_document(body: DocumentIn, session: Session) -> DocumentOut:
    document = await service.create_document(session, title=body.title, owner_id=body.owner_id)
    return DocumentOut.model_validate(document)


@router.get("/documents", response_model=CursorPage[DocumentOut])
async def list_documents(
    session: Session,
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
    owner_id: uuid.UUID | None = None,
) -> CursorPage[DocumentOut]:
    page = await service.list_documents(session, first=limit, after=cursor, owner_id=owner_id)
    return CursorPage.of(page, DocumentOut)


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: uuid.UUID, session: Session) -> DocumentOut:
    return DocumentOut.model_validate(await service.get_document(session, document_id))
