"""The FastAPI application every subgraph serves: GraphQL, REST, health, docs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import strawberry
from fastapi import APIRouter, FastAPI, Request
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from subgraphs.common import redis
from subgraphs.common.auth import SessionRevocations, TokenVerifier, bearer_token
from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.errors import HubError
from subgraphs.common.graphql import Context, assign_codes
from subgraphs.common.health import health_router
from subgraphs.common.observability import install_observability
from subgraphs.common.rest import PROBLEM_RESPONSES, install_problem_handlers
from subgraphs.common.settings import ServiceSettings


class HubGraphQLRouter(GraphQLRouter[Context, None]):
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
) -> FastAPI:
    """`background`: loops run for the life of the served app (e.g. an outbox relay)."""
    # Neither creates a connection yet: building the app does no I/O.
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    namespace = redis.connect(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = [asyncio.create_task(loop(app)) for loop in background]
        yield
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await app.state.revocations.close()
        await namespace.close()
        await engine.dispose()

    app = FastAPI(
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
        context = context_class(settings, sessions, namespace, principal, auth_error)
        context.verifier = app.state.verifier
        return context

    graphql = HubGraphQLRouter(
        schema,
        context_getter=context,
        graphql_ide=None if settings.hub.is_production else "graphiql",
        multipart_uploads_enabled=True,
    )
    app.include_router(graphql, prefix="/graphql", include_in_schema=False)
    app.include_router(health_router(settings.name))
    app.include_router(rest, prefix="/api/v1", responses=PROBLEM_RESPONSES)
    install_problem_handlers(app)
    install_observability(app, settings.name)
    return app
