"""What the REST routes share: injected dependencies and problem+json error responses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from subgraphs.common.auth import Principal, bearer_token, require_user
from subgraphs.common.client import ClientInfo
from subgraphs.common.errors import HubError, problem
from subgraphs.common.pagination import Page

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """The body of every REST error: RFC 9457 problem details, as `errors.problem` builds it."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str | None = None


# Declared on every REST route, so that the OpenAPI document tells clients (and schemathesis)
# what an error looks like instead of FastAPI's default `application/json` 422 body.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }
    for status, description in (
        ("4XX", "The request was refused; `code` says why."),
        ("5XX", "The service failed; `code` is INTERNAL_SERVER_ERROR."),
    )
}


async def _session(request: Request):  # type: ignore[no-untyped-def]
    async with request.app.state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(_session)]


async def _caller(request: Request) -> Principal | None:
    token = bearer_token(request.headers.get("authorization"))
    return await request.app.state.verifier.verify(token) if token else None


async def _signed_in(caller: Annotated[Principal | None, Depends(_caller)]) -> Principal:
    return require_user(caller)


def _client(request: Request) -> ClientInfo:
    return ClientInfo.of(request)


# The network facts of the request (IP, user agent, request id), for audit records.
Client = Annotated[ClientInfo, Depends(_client)]
# The verified caller, or None for an anonymous request (a bad token is a 401 either way).
Caller = Annotated[Principal | None, Depends(_caller)]
# The verified caller; anonymous requests get 401.
SignedIn = Annotated[Principal, Depends(_signed_in)]

Item = TypeVar("Item", bound=BaseModel)


class CursorPage(BaseModel, Generic[Item]):
    """A page of a REST list; pass `next_cursor` back as `cursor` for the next one."""

    items: Sequence[Item]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Any], item: type[Item]) -> CursorPage[Item]:
        return cls(
            items=[item.model_validate(row) for row in page.items],
            next_cursor=page.end_cursor if page.has_next_page else None,
        )


def _problem_response(status: int, body: dict[str, object], headers=None) -> JSONResponse:  # type: ignore[no-untyped-def]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's 405 names only the first route that matched the path, but a path often has
    one route per method (GET and POST /documents): RFC 9110 wants all of them in `Allow`.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if (
            isinstance(route, Route)
            and route.methods
            and route.matches(request.scope)[0] != Match.NONE
        ):
            methods |= route.methods
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(request: Request, error: HubError) -> JSONResponse:
        retry_after = error.details.get("retry_after")
        return _problem_response(
            error.status,
            problem(error.status, error.title, error.message, code=error.code, **error.details),
            headers={"Retry-After": str(retry_after)} if retry_after else None,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in error.errors()
        ]
        return _problem_response(
            422,
            problem(
                422,
                "Invalid input",
                "The request does not match the schema.",
                code="BAD_USER_INPUT",
                errors=errors,
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        title = str(error.detail) if error.detail else "HTTP error"
        headers = error.headers
        if error.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return _problem_response(error.status_code, problem(error.status_code, title), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem_response(
            500, problem(500, "Internal server error", code="INTERNAL_SERVER_ERROR")
        )
