"""Who is on the other end of a request, as far as the network tells: IP, agent, request id."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

MAX_USER_AGENT = 500


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, connection: HTTPConnection | None) -> ClientInfo:
        if connection is None:
            return cls()
        # Behind the router, uvicorn's proxy_headers already turned X-Forwarded-For into
        # the client address.
        ip = connection.client.host if connection.client else None
        agent = connection.headers.get("user-agent")
        return cls(
            ip=ip,
            user_agent=agent[:MAX_USER_AGENT] if agent else None,
            request_id=connection.headers.get("x-request-id"),
        )
