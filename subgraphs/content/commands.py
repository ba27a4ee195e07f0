"""Content's own commands, besides every subgraph's (serve, migrate, sdl, makemigration)."""

from __future__ import annotations

import asyncio

from subgraphs.common import redis
from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.subgraph import Subgraph
from subgraphs.content.service import audit, documents, events
from subgraphs.content.settings import ContentSettings


def verify_audit(subgraph: Subgraph) -> int:
    """`python -m subgraphs.content verify-audit`: exit 0 when the chain holds, 1 otherwise."""

    async def run() -> audit.Verification:
        engine = create_engine(subgraph.settings())
        try:
            async with create_sessionmaker(engine)() as session:
                return await audit.verify_chain(session)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    if result.ok:
        print(f"audit chain intact: {result.checked} entries, last hash {result.last_hash}")
        return 0
    print(
        f"audit chain broken at entry {result.first_broken_seq} ({result.first_broken_id}): "
        f"{result.reason}; {result.checked - 1} entries before it hold"
    )
    return 1


def reindex(subgraph: Subgraph) -> int:
    """`python -m subgraphs.content reindex`: rebuild every document's search vector.

    Needed after HUB_CONTENT_SEARCH_LANGUAGE changes; documents are otherwise indexed when
    they are written.
    """
    settings = subgraph.settings()
    assert isinstance(settings, ContentSettings)

    async def run() -> int:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                count = await documents.reindex(session, settings)
        finally:
            await engine.dispose()
        namespace = redis.connect(settings)
        try:
            await events.invalidate_search(namespace)
        finally:
            await namespace.close()
        return count

    count = asyncio.run(run())
    print(f"reindexed {count} documents in {settings.search_language!r}")
    return 0
