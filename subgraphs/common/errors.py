"""One error vocabulary for GraphQL and REST.

Service functions raise `HubError` subclasses. GraphQL reports them with
`extensions.code`; REST answers with `application/problem+json` (RFC 9457) and the
matching status. Anything else is logged and reported as an opaque internal error:
clients never see a stack trace.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        self.details = details

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, **self.details}


class BadInput(HubError):
    code = "BAD_USER_INPUT"
    status = 422
    title = "Invalid input"


class NotFound(HubError):
    code = "NOT_FOUND"
    status = 404
    title = "Not found"


class Conflict(HubError):
    code = "CONFLICT"
    status = 409
    title = "Conflict"


class Unauthenticated(HubError):
    code = "UNAUTHENTICATED"
    status = 401
    title = "Authentication required"


class Forbidden(HubError):
    code = "FORBIDDEN"
    status = 403
    title = "Forbidden"


class TooManyRequests(HubError):
    code = "TOO_MANY_REQUESTS"
    status = 429
    title = "Too many requests"


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body
