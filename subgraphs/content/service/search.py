"""Full-text search over the documents a caller may read.

- PostgreSQL full-text search on the weighted `search_vector` (title > tags > metadata and
  description > body), `websearch_to_tsquery` syntax ("quoted phrases", -exclusions, or),
  ranked by `ts_rank_cd`, with `ts_headline` snippets;
- when that finds nothing, a trigram (pg_trgm) match on titles, for typos;
- the same filters as lists, and keyset pagination on (rank, id);
- results cached in Redis per caller and query, under a generation number that every
  change to any document increments (events.announce), so a change is never hidden by
  the cache. Hits from the cache are loaded again through the access predicate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis.exceptions import RedisError
from sqlalchemy import REAL, ColumnElement, Select, and_, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.common.auth import Principal
from subgraphs.common.errors import BadInput
from subgraphs.common.pagination import check_page_size
from subgraphs.content.models import Document
from subgraphs.content.service import events
from subgraphs.content.service.documents import DocumentFilter, documents_by_ids
from subgraphs.content.service.resources import Resources
from subgraphs.content.service.text import storable_text

log = logging.getLogger(__name__)

MAX_QUERY = 500
Mode = Literal["fulltext", "fuzzy"]
# Marks around matches in ts_headline's output; everything else is HTML-escaped and the
# marks become <mark> elements, so a snippet is safe to render as HTML.
START, STOP = "\x02", "\x03"
HEADLINE_OPTIONS = f"StartSel={START}, StopSel={STOP}, MaxFragments=2, MaxWords=25, MinWords=8"


@dataclass(frozen=True)
class Hit:
    document_id: uuid.UUID
    rank: float
    snippet: str


@dataclass(frozen=True)
class SearchResults:
    hits: list[tuple[Hit, Document | Row[Any]]]  # rows when reloaded from the cache
    has_next_page: bool
    end_cursor: str | None
    mode: Mode


def encode_cursor(mode: Mode, rank: float, id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{mode}|{rank!r}|{id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Mode, float, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        mode, rank, id = raw.split("|")
        if mode not in ("fulltext", "fuzzy"):
            raise ValueError(mode)
        return mode, float(rank), uuid.UUID(id)  # type: ignore[return-value]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInput(f"invalid cursor: {cursor!r}", field="after") from None


def safe_snippet(headline: str) -> str:
    return html.escape(headline).replace(START, "<mark>").replace(STOP, "</mark>")


async def search_documents(
    session: AsyncSession,
    resources: Resources,
    *,
    principal: Principal | None,
    query: str,
    filter: DocumentFilter = DocumentFilter(),
    first: int = 20,
    after: str | None = None,
) -> SearchResults:
    query = storable_text(query, field="query").strip()
    if not query or len(query) > MAX_QUERY:
        raise BadInput(f"query must be 1 to {MAX_QUERY} characters", field="query")
    check_page_size(first)
    cursor = decode_cursor(after) if after else None
    if principal is None:  # anonymous callers read nothing
        return SearchResults([], False, None, "fulltext")

    key = await _cache_key(resources, principal, query, filter, first, after)
    cached = await _cached(resources, key)
    if cached is not None:
        return await _reload(session, principal, cached)

    mode: Mode = cursor[0] if cursor else "fulltext"
    rows: list[Any] = []
    if mode == "fulltext":
        rows = await _fulltext(session, resources, principal, query, filter, first, cursor)
        if not rows and cursor is None:
            mode = "fuzzy"
    if mode == "fuzzy":
        rows = await _fuzzy(session, principal, query, filter, first, cursor)

    shown = rows[:first]
    hits = [
        (Hit(document.id, float(rank), safe_snippet(headline or "")), document)
        for document, rank, headline in shown
    ]
    last = hits[-1][0] if hits else None
    results = SearchResults(
        hits,
        len(rows) > first,
        encode_cursor(mode, last.rank, last.document_id) if last else None,
        mode,
    )
    await _store(resources, key, results)
    return results


def _after(rank: ColumnElement[Any], cursor: tuple[Mode, float, uuid.UUID] | None) -> Any:
    if cursor is None:
        return and_(True)
    _, last_rank, last_id = cursor
    # `rank` is a float4 in PostgreSQL: compare in that type, as it was computed.
    bound = cast(literal(last_rank), REAL)
    return or_(rank < bound, and_(rank == bound, Document.id < last_id))


async def _fulltext(
    session: AsyncSession,
    resources: Resources,
    principal: Principal,
    query: str,
    filter: DocumentFilter,
    first: int,
    cursor: tuple[Mode, float, uuid.UUID] | None,
) -> list[Any]:
    config = cast(literal(resources.settings.search_language), REGCONFIG)
    tsquery = func.websearch_to_tsquery(config, query)
    # 32: rank / (rank + 1), a score in [0, 1) whatever the document's length.
    rank = func.ts_rank_cd(Document.search_vector, tsquery, 32)
    ranked: Select[Any] = filter.apply(select(Document.id, rank.label("rank")), principal).where(
        Document.search_vector.op("@@")(tsquery), _after(rank, cursor)
    )
    page = ranked.order_by(rank.desc(), Document.id.desc()).limit(first + 1).subquery()
    # Headlines only for the page's rows: ts_headline parses the whole text each time.
    source = func.concat_ws(" ", Document.title, Document.description, Document.body_text)
    headline = func.ts_headline(config, source, tsquery, HEADLINE_OPTIONS)
    stmt = (
        select(Document, page.c.rank, headline)
        .join(page, page.c.id == Document.id)
        .order_by(page.c.rank.desc(), Document.id.desc())
    )
    return list((await session.execute(stmt)).all())


async def _fuzzy(
    session: AsyncSession,
    principal: Principal,
    query: str,
    filter: DocumentFilter,
    first: int,
    cursor: tuple[Mode, float, uuid.UUID] | None,
) -> list[Any]:
    similarity = func.word_similarity(query, Document.title)
    stmt = (
        filter.apply(select(Document, similarity, Document.title), principal)
        .where(literal(query).op("<%")(Document.title), _after(similarity, cursor))
        .order_by(similarity.desc(), Document.id.desc())
        .limit(first + 1)
    )
    return list((await session.execute(stmt)).all())


# --- cache ----------------------------------------------------------------------------


def _fingerprint(principal: Principal) -> dict[str, Any]:
    """What decides the caller's access: two callers alike in it may share results."""
    return {
        "user": str(principal.user_id),
        "admin": principal.has_scope("admin"),
        "roles": sorted(principal.roles),
        "orgs": {str(org): sorted(roles) for org, roles in principal.organizations.items()},
    }


async def _cache_key(
    resources: Resources,
    principal: Principal,
    query: str,
    filter: DocumentFilter,
    first: int,
    after: str | None,
) -> str | None:
    if resources.settings.search_cache_seconds <= 0:
        return None
    redis = resources.redis
    try:
        generation = await redis.client.get(redis.key(events.SEARCH_GENERATION)) or "0"
    except RedisError:
        return None
    request = {
        "who": _fingerprint(principal),
        "q": query,
        "filter": asdict(filter),
        "first": first,
        "after": after,
        "language": resources.settings.search_language,
    }
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    return redis.key("search", generation, digest)


async def _cached(resources: Resources, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        raw = await resources.redis.client.get(key)
    except RedisError:
        return None
    return json.loads(raw) if raw else None


async def _store(resources: Resources, key: str | None, results: SearchResults) -> None:
    if key is None:
        return
    value = {
        "hits": [[str(hit.document_id), hit.rank, hit.snippet] for hit, _ in results.hits],
        "has_next_page": results.has_next_page,
        "end_cursor": results.end_cursor,
        "mode": results.mode,
    }
    try:
        await resources.redis.client.set(
            key, json.dumps(value), ex=resources.settings.search_cache_seconds
        )
    except RedisError:
        log.warning("could not cache search results")


async def _reload(
    session: AsyncSession, principal: Principal, cached: dict[str, Any]
) -> SearchResults:
    """Cached hits, each loaded again through the access predicate (shares expire)."""
    hits = [Hit(uuid.UUID(id), rank, snippet) for id, rank, snippet in cached["hits"]]
    documents = await documents_by_ids(
        session, [hit.document_id for hit in hits], principal=principal
    )
    return SearchResults(
        [(hit, document) for hit, document in zip(hits, documents, strict=True) if document],
        cached["has_next_page"],
        cached["end_cursor"],
        cached["mode"],
    )
