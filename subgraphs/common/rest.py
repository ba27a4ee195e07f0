"""What the REST routes share: injected dependencies and problem+json error responses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from subgraphs.common.errors import HubError, problem
from subgraphs.common.pagination import Page

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


async def _session(request: Request):  # type: ignore[no-untyped-def]
    async with request.app.state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(_session)]

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


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(request: Request, error: HubError) -> JSONResponse:
        return _problem_response(
            error.status,
            problem(error.status, error.title, error.message, code=error.code, **error.details),
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
        return _problem_response(
            error.status_code, problem(error.status_code, title), headers=error.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem_response(
            500, problem(500, "Internal server error", code="INTERNAL_SERVER_ERROR")
        )
