"""Content's domain rules. GraphQL resolvers and REST routes both call these."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.dataloaders import ordered
from subgraphs.common.errors import BadInput, NotFound
from subgraphs.common.pagination import Page, PageKey, keyset_page, pages_per_parent
from subgraphs.content.models import Document

MAX_TITLE = 500


def clean_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    return title


async def create_document(session: AsyncSession, *, title: str, owner_id: uuid.UUID) -> Document:
    document = Document(title=clean_title(title), owner_id=owner_id)
    session.add(document)
    await session.commit()
    return document


async def get_document(session: AsyncSession, document_id: uuid.UUID) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound("document not found")
    return document


async def documents_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[Document | None]:
    rows = (await session.scalars(select(Document).where(Document.id.in_(set(ids))))).all()
    return ordered(ids, rows, key=lambda document: document.id)


async def list_documents(
    session: AsyncSession, *, first: int, after: str | None, owner_id: uuid.UUID | None = None
) -> Page[Document]:
    stmt = select(Document)
    if owner_id is not None:
        stmt = stmt.where(Document.owner_id == owner_id)
    return await keyset_page(session, stmt, Document, first=first, after=after)


async def documents_of_owners(
    session: AsyncSession, keys: Sequence[PageKey]
) -> list[Page[Document]]:
    return await pages_per_parent(session, select(Document), Document, Document.owner_id, keys)
