"""The FastAPI application every subgraph serves: GraphQL, REST, health, docs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import strawberry
from fastapi import APIRouter, FastAPI
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from subgraphs.common import redis
from subgraphs.common.auth import SessionRevocations, TokenVerifier, bearer_token
from subgraphs.common.compiled import CompiledQueries
from subgraphs.common.database import (
    create_engine,
    create_reader_sessionmaker,
    create_sessionmaker,
    shrink_idle_connections,
)
from subgraphs.common.errors import HubError
from subgraphs.common.graphql import Context, assign_codes
from subgraphs.common.health import health_router
from subgraphs.common.observability import install_observability, observe_endpoint
from subgraphs.common.rest import PROBLEM_RESPONSES, install_problem_handlers
from subgraphs.common.settings import ServiceSettings

GRAPHQL_PATH = "/graphql"


class SubgraphApp(FastAPI):
    """FastAPI for REST, health and docs; `/graphql` goes straight to Strawberry's ASGI view.

    FastAPI's middleware, route matching and dependency injection cost ~0.1 ms a request
    (a third of a `{ __typename }` query, measured in process); none of it applies to
    GraphQL, which refuses bad input in its own response body. Request ids, metrics and
    traces still wrap the view (`observe_endpoint`), and an unexpected error still ends in
    a plain 500 rather than a dropped connection.
    """

    graphql_endpoint: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.graphql_endpoint is not None
            and scope["type"] in ("http", "websocket")
            and scope["path"] == GRAPHQL_PATH
        ):
            scope["app"] = self  # what `request.app` (app.state) reads
            await self.graphql_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class HubGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: strawberry.federation.Schema,
        *,
        context_getter: Callable[[HTTPConnection], Awaitable[Context]],
        compiled_queries: bool = True,
        service: str = "unknown",
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self.context_getter = context_getter
        self.compiled = CompiledQueries(self, service) if compiled_queries else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Plain queries are answered from compiled plans (common/compiled.py); the rest,
        # and whatever a plan cannot answer exactly, by Strawberry as before.
        if scope["type"] == "http" and self.compiled is not None:
            unanswered = await self.compiled.serve(scope, receive, send)
            if unanswered is None:
                return
            receive = unanswered
        await super().__call__(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = await self.context_getter(request)
        context.request = request
        context.response = response  # type: ignore[assignment]
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A WebSocket client authenticates in `connection_init`: {"Authorization": "Bearer …"}."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        if header is None and context.principal is not None:
            return UNSET  # authenticated by the upgrade request's own header
        verifier = context.verifier
        assert verifier is not None, "the context getter sets the verifier"
        try:
            token = bearer_token(str(header) if header is not None else None)
            context.principal = await verifier.verify(token) if token else None
        except HubError as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        return UNSET

    def encode_json(self, data: object) -> str:
        """orjson: a page of 20 documents encodes several times faster than with json.dumps
        (which took ~5 % of the request); json.dumps still encodes what orjson refuses
        (integers past 64 bits in a JSON scalar). Text, not bytes: Strawberry sends bytes
        over a WebSocket as binary frames, which graphql-transport-ws does not allow."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, separators=(",", ":"))

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            assign_codes(result.errors)
        return await super().process_result(request, result)


def create_app(
    *,
    settings: ServiceSettings,
    schema: strawberry.federation.Schema,
    rest: APIRouter,
    title: str,
    description: str,
    context_class: Callable[..., Context] = Context,
    verifier: TokenVerifier | None = None,
    background: Sequence[Callable[[FastAPI], Coroutine[Any, Any, None]]] = (),
) -> SubgraphApp:
    """`background`: loops run for the life of the served app (e.g. an outbox relay)."""
    # Neither creates a connection yet: building the app does no I/O.
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    readers = create_reader_sessionmaker(engine)
    namespace = redis.connect(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = [asyncio.create_task(loop(app)) for loop in background]
        running.append(
            asyncio.create_task(shrink_idle_connections(engine, settings.db_pool_idle_seconds))
        )
        yield
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await app.state.revocations.close()
        await namespace.close()
        await engine.dispose()

    app = SubgraphApp(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.readers = readers
    app.state.redis = namespace
    app.state.revocations = SessionRevocations.for_deployment(settings.hub)
    app.state.verifier = verifier or TokenVerifier.from_settings(
        settings.hub, revocations=app.state.revocations
    )

    async def context(connection: HTTPConnection) -> Context:
        principal, auth_error = None, None
        try:
            token = bearer_token(connection.headers.get("authorization"))
            if token:
                principal = await app.state.verifier.verify(token)
        except HubError as error:
            auth_error = error
        context = context_class(
            settings, sessions, namespace, principal, auth_error, reader=readers
        )
        context.verifier = app.state.verifier
        return context

    graphql = HubGraphQL(
        schema,
        context_getter=context,
        compiled_queries=settings.hub.compiled_queries,
        service=settings.name,
        graphql_ide=None if settings.hub.is_production else "graphiql",
        multipart_uploads_enabled=True,
    )
    app.graphql_endpoint = observe_endpoint(graphql, settings.name, route=GRAPHQL_PATH)
    app.include_router(health_router(settings.name))
    app.include_router(rest, prefix="/api/v1", responses=PROBLEM_RESPONSES)
    install_problem_handlers(app)
    install_observability(app, settings.name)
    return app
