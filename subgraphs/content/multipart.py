"""Reading one file out of a multipart/form-data request as it arrives.

FastAPI's `UploadFile` only exists once the whole body has been received and spooled to
a temporary file, which is too late to refuse an upload over the limit and doubles the
disk writes. This parser hands the `file` part's bytes on chunk by chunk while the
request is still streaming in; other form fields are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from subgraphs.common.errors import BadInput


@dataclass
class FilePart:
    filename: str | None
    media_type: str | None
    chunks: AsyncIterator[bytes]


class _Events:
    """The parser's callbacks, queued for the async reader (the parser is synchronous)."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any]] = []
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": lambda: self.queue.append(("begin", None)),
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": lambda: self.queue.append(("headers_done", None)),
            "on_part_data": lambda data, start, end: self.queue.append(
                ("data", bytes(data[start:end]))
            ),
            "on_part_end": lambda: self.queue.append(("end", None)),
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self.queue.append(("header", (self._field.lower(), self._value)))
        self._field, self._value = b"", b""


async def _events(request: Request, boundary: bytes) -> AsyncIterator[tuple[str, Any]]:
    events = _Events()
    parser = MultipartParser(boundary, events.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            queued, events.queue = events.queue, []
            for event in queued:
                yield event
        parser.finalize()
    except MultipartParseError as error:
        raise BadInput(f"malformed multipart body: {error}", field="file") from None
    for event in events.queue:
        yield event


async def file_part(request: Request, field: str = "file") -> FilePart:
    """The part named `field`; its bytes are read from the request as they are consumed."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadInput("send the file as multipart/form-data", field=field)
    events = _events(request, boundary)
    headers: dict[bytes, bytes] = {}
    async for kind, value in events:
        if kind == "begin":
            headers = {}
        elif kind == "header":
            headers[value[0]] = value[1]
        elif kind == "headers_done":
            _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
            if disposition.get(b"name", b"").decode("utf-8", "replace") != field:
                continue
            filename = disposition.get(b"filename")
            media_type = headers.get(b"content-type")
            return FilePart(
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                media_type=media_type.decode("latin-1") if media_type else None,
                chunks=_part_data(events),
            )
    raise BadInput(f"the form has no `{field}` field", field=field)


async def _part_data(events: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[bytes]:
    async for kind, value in events:
        if kind == "data":
            if value:
                yield value
        elif kind == "end":
            break
    # The rest of the body (a closing boundary, maybe other fields) is left unread.
