"""`/health`: the process is alive. `/ready`: its database and Redis answer, else 503."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

CHECK_TIMEOUT_SECONDS = 2.0


async def _check(probe: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"timed out after {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as error:  # any failure means "not ready"; say which
        return f"{type(error).__name__}: {error}".strip()
    return "ok"


def health_router(service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/ready",
        summary="Readiness: the database and Redis answer",
        responses={503: {"description": "A dependency is unreachable"}},
    )
    async def ready(request: Request) -> JSONResponse:
        state = request.app.state

        async def database() -> None:
            async with state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        checks = dict(
            zip(
                ("database", "redis"),
                await asyncio.gather(_check(database), _check(state.redis.ping)),
                strict=True,
            )
        )
        ok = all(result == "ok" for result in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "service": service, "checks": checks},
            status_code=200 if ok else 503,
        )

    return router
