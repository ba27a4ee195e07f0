"""Content's REST API as workflow uses it, always on behalf of a person: their token is
forwarded, so content applies its own access rules (a document they may not read is a
404 here too, a type content does not know is refused by content). Workflow never reads
or writes content's tables.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from subgraphs.common.errors import (
    BadInput,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    Unauthenticated,
)
from subgraphs.common.observability import request_id

# What is read of a file for suggestions: enough for any business letter or report.
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TEXT_CHARS = 100_000
TEXT_TYPES = ("text/", "application/json", "application/xml")
TAG = re.compile(r"<[^>]+>")


class ContentUnavailable(HubError):
    code = "SERVICE_UNAVAILABLE"
    status = 503


@dataclass(frozen=True)
class DocumentText:
    id: uuid.UUID
    title: str
    type: str
    tags: list[str]
    version: int
    organization_id: uuid.UUID | None
    text: str


class ContentAPI:
    """`transport`: tests hand in content's app in process (httpx.ASGITransport)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport

    def _client(self, authorization: str | None) -> httpx.AsyncClient:
        headers = {"authorization": authorization} if authorization else {}
        if current := request_id.get():
            headers["x-request-id"] = current
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout, transport=self.transport
        )

    async def document_text(
        self, document_id: uuid.UUID, authorization: str | None
    ) -> DocumentText:
        """The document's title, description and its newest file's text, as the caller sees it."""
        async with self._client(authorization) as client:
            document = await _json(await _call(client, "GET", f"/api/v1/documents/{document_id}"))
            parts = [document["title"], document.get("description") or ""]
            latest = document.get("latest_version")
            if latest and latest["size"] <= MAX_FILE_BYTES:
                response = await _call(client, "GET", f"/api/v1/documents/{document_id}/content")
                _check(response)
                parts.append(text_of(response.content, latest["media_type"]))
        return DocumentText(
            id=document_id,
            title=document["title"],
            type=document["type"],
            tags=list(document.get("tags") or []),
            version=document["version"],
            organization_id=uuid.UUID(document["organization_id"])
            if document.get("organization_id")
            else None,
            text="\n\n".join(p for p in parts if p.strip())[:MAX_TEXT_CHARS],
        )

    async def label(
        self, document_id: uuid.UUID, authorization: str | None, *, type: str, tags: list[str]
    ) -> dict[str, Any]:
        """Set the document's type and add tags, as the caller (their WRITE permission).

        The update names the version it read; when someone changed the document meanwhile,
        it reads again and retries once.
        """
        async with self._client(authorization) as client:
            for attempt in range(2):
                path = f"/api/v1/documents/{document_id}"
                document = await _json(await _call(client, "GET", path))
                merged = list(dict.fromkeys([*document.get("tags", []), *tags]))
                body = {"version": document["version"], "type": type, "tags": merged}
                response = await _call(client, "PATCH", path, json=body)
                if response.status_code == 409 and attempt == 0:
                    continue
                return await _json(response)
        raise AssertionError("unreachable")


def text_of(data: bytes, media_type: str) -> str:
    media_type = media_type.split(";")[0].strip().lower()
    if media_type == "application/pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            return "\n".join(page.extract_text() or "" for page in reader.pages[:50])
        except (PdfReadError, ValueError):
            return ""
    if not media_type.startswith(TEXT_TYPES):
        return ""  # images, office files: their text is not read here
    text = data.decode("utf-8", errors="replace")
    return TAG.sub(" ", text) if "html" in media_type or "xml" in media_type else text


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.request(method, path, **kwargs)
    except httpx.HTTPError as error:
        raise ContentUnavailable(f"content did not answer ({type(error).__name__})") from None


def _check(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        detail = response.json().get("detail") or response.reason_phrase
    except ValueError:
        detail = response.reason_phrase
    if status == 401:
        raise Unauthenticated(str(detail))
    if status == 403:
        raise Forbidden(f"content refused: {detail}")
    if status == 404:
        raise NotFound("document not found")
    if status == 409:
        raise Conflict(f"content refused: {detail}")
    if status in (400, 422):
        raise BadInput(f"content refused: {detail}", field="type")
    raise ContentUnavailable(f"content answered {status}")


async def _json(response: httpx.Response) -> dict[str, Any]:
    _check(response)
    body = response.json()
    assert isinstance(body, dict)
    return body
