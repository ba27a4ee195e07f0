"""Content's own commands, besides every subgraph's (serve, migrate, sdl, makemigration)."""

from __future__ import annotations

import asyncio

from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.subgraph import Subgraph
from subgraphs.content.service import audit


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
        print(f"audit chain intact: {result.checked} entries")
        return 0
    print(
        f"audit chain broken at entry {result.first_broken_seq} ({result.first_broken_id}): "
        f"{result.reason}; {result.checked - 1} entries before it hold"
    )
    return 1
