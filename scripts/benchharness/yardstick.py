"""The yardstick: a minimal raw ASGI app on asyncpg answering what content answers.

No framework, no ORM, no GraphQL, no auth: the least a Python service on this machine
can do per request for the same JSON. A subgraph's throughput is reported as a ratio
to it ("Python efficiency"), and content's search p95 as a ratio to its raw tsquery.

    POST /documents {"first": 20}     -> {"data": {"documents": {"nodes": [{id, title, owner}]}}}
    POST /search    {"query": "word"} -> {"data": {"hits": [{id, title, rank}]}}
    POST /floor     content's documents query, answered by a bare Strawberry schema from
                    rows read once at startup: no database, no auth, no FastAPI — the
                    least any Strawberry subgraph can spend on that query (the "floor")
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import asyncpg
import strawberry
import uvicorn
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

DOCUMENTS = """
SELECT id::text, title, owner_id::text FROM documents
WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $1
"""
# The same index and ranking as content's search (ts_rank_cd, normalization 32).
SEARCH = """
SELECT id::text, title, ts_rank_cd(search_vector, q, 32) AS rank
FROM documents, websearch_to_tsquery($2::regconfig, $1) AS q
WHERE search_vector @@ q AND deleted_at IS NULL
ORDER BY rank DESC, id LIMIT 20
"""


FLOOR_ROWS = 100  # content's largest page


@strawberry.type
class FloorOwner:
    id: strawberry.ID


@strawberry.type
class FloorDocument:
    id: strawberry.ID
    title: str
    owner: FloorOwner


@strawberry.type
class FloorConnection:
    nodes: list[FloorDocument]


def floor_schema(rows: list[FloorDocument]) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        async def documents(self, first: int = 20) -> FloorConnection:
            return FloorConnection(nodes=rows[:first])

    # The same parser and validation caches as the subgraphs.
    return strawberry.Schema(
        query=Query,
        extensions=[lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256)],
    )


class Yardstick:
    def __init__(self, dsn: str, language: str) -> None:
        self.dsn = dsn
        self.language = language
        self.pool: asyncpg.Pool | None = None
        self.floor: GraphQL[None, None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.pool = await asyncpg.create_pool(self.dsn, min_size=4, max_size=10)
                    rows = await self.pool.fetch(DOCUMENTS, FLOOR_ROWS)
                    documents = [
                        FloorDocument(id=r[0], title=r[1], owner=FloorOwner(id=r[2])) for r in rows
                    ]
                    self.floor = GraphQL(floor_schema(documents), graphql_ide=None)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.pool is not None:
                        await self.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/floor":
            assert self.floor is not None
            await self.floor(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self.pool is not None
        args = json.loads(body or b"{}")
        if scope["path"] == "/documents":
            rows = await self.pool.fetch(DOCUMENTS, int(args.get("first", 20)))
            nodes = [{"id": r[0], "title": r[1], "owner": {"id": r[2]}} for r in rows]
            payload: dict[str, Any] = {"data": {"documents": {"nodes": nodes}}}
        elif scope["path"] == "/search":
            rows = await self.pool.fetch(SEARCH, str(args["query"]), self.language)
            hits = [{"id": r[0], "title": r[1], "rank": r[2]} for r in rows]
            payload = {"data": {"hits": hits}}
        else:
            payload = {"ok": True}
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchharness.yardstick")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--language", default="english")
    args = parser.parse_args()
    uvicorn.run(
        Yardstick(args.dsn, args.language),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
