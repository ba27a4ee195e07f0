"""Cursor (keyset) pagination, newest first, shared by every list in the graph.

A cursor is the opaque encoding of the last item's (created_at, id): stable while rows
are inserted, and each page costs one indexed query whatever its depth.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from subgraphs.common.errors import BadInput

M = TypeVar("M")
T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    has_next_page: bool
    end_cursor: str | None


def encode_cursor(created_at: datetime, id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, id = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInput(f"invalid cursor: {cursor!r}", field="after") from None


def check_page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadInput(f"first must be between 1 and {MAX_PAGE_SIZE}", field="first")
    return first


def after_cursor(model: Any, after: str | None) -> Any:
    """WHERE clause selecting the rows that come after `after` in newest-first order."""
    if after is None:
        return and_(True)
    created_at, id = decode_cursor(after)
    return or_(
        model.created_at < created_at,
        and_(model.created_at == created_at, model.id < id),
    )


def newest_first(model: Any) -> tuple[Any, Any]:
    return (model.created_at.desc(), model.id.desc())


async def keyset_page(
    session: AsyncSession, stmt: Select[Any], model: Any, *, first: int, after: str | None
) -> Page[Any]:
    rows = (await session.scalars(page_statement(stmt, model, first=first, after=after))).all()
    return page_of(list(rows), first)


def page_statement(stmt: Select[Any], model: Any, *, first: int, after: str | None) -> Select[Any]:
    """`stmt` narrowed to the page: after the cursor, newest first, one row more than asked
    (whether there is a next page)."""
    check_page_size(first)
    return stmt.where(after_cursor(model, after)).order_by(*newest_first(model)).limit(first + 1)


def page_of(rows: Sequence[Any], first: int) -> Page[Any]:
    """The page from `page_statement`'s rows (instances or rows with created_at and id)."""
    shown = list(rows[:first])
    end = encode_cursor(shown[-1].created_at, shown[-1].id) if shown else None
    return Page(shown, len(rows) > first, end)


# Every subgraph defines PageInfo identically; federation needs it marked shareable.
@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Connection(Generic[T]):
    nodes: list[T]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[M], convert: Callable[[M], T]) -> Connection[T]:
        return cls(
            nodes=[convert(item) for item in page.items],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@dataclass(frozen=True)
class PageKey:
    """DataLoader key for one parent's page of children (e.g. one user's documents)."""

    parent_id: uuid.UUID
    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None


async def pages_per_parent(
    session: AsyncSession,
    stmt: Select[Any],
    model: Any,
    parent_column: Any,
    keys: Sequence[PageKey],
) -> list[Page[Any]]:
    """One page of children for each key, in one query per distinct (first, after).

    ROW_NUMBER() per parent keeps it a single statement however many parents are asked
    for, where a naive resolver would issue one query per parent (N+1).
    """
    pages: dict[PageKey, Page[Any]] = {}
    windows: dict[tuple[int, str | None], list[PageKey]] = {}
    for key in keys:
        windows.setdefault((check_page_size(key.first), key.after), []).append(key)

    for (first, after), window_keys in windows.items():
        rank = (
            func.row_number()
            .over(partition_by=parent_column, order_by=newest_first(model))
            .label("rank")
        )
        ranked = (
            stmt.add_columns(rank)
            .where(parent_column.in_({k.parent_id for k in window_keys}))
            .where(after_cursor(model, after))
            .subquery()
        )
        child = aliased(model, ranked)
        rows = (
            await session.scalars(
                select(child).where(ranked.c.rank <= first + 1).order_by(*newest_first(child))
            )
        ).all()
        by_parent: dict[uuid.UUID, list[Any]] = {}
        for row in rows:
            by_parent.setdefault(getattr(row, parent_column.key), []).append(row)
        for key in window_keys:
            children = by_parent.get(key.parent_id, [])
            shown = children[:first]
            end = encode_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            pages[key] = Page(shown, len(children) > first, end)
    return [pages[key] for key in keys]
