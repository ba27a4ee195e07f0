"""Text of uploaded files, for search: plain text, Markdown, HTML and PDF (pypdf).

Runs in a worker thread (it is CPU work) on a file already in storage; reads at most
what it needs for `max_chars` characters of text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

TEXT_TYPES = {"text/plain", "text/markdown", "text/csv", "application/json"}
HTML_TYPES = {"text/html", "application/xhtml+xml"}
PDF_TYPES = {"application/pdf"}


def can_extract(media_type: str) -> bool:
    return media_type in TEXT_TYPES | HTML_TYPES | PDF_TYPES


def extract_text(path: Path, media_type: str, max_chars: int) -> str:
    if media_type in PDF_TYPES:
        text = _pdf_text(path, max_chars)
    else:
        # Up to 4 bytes a character in UTF-8: this is enough, and bounded.
        with path.open("rb") as handle:
            raw = handle.read(max_chars * 4)
        text = raw.decode("utf-8", errors="replace")
        if media_type in HTML_TYPES:
            text = _html_text(text)
        elif media_type == "text/markdown":
            text = _markdown_text(text)
    return _storable(text)[:max_chars]


def _storable(text: str) -> str:
    """PostgreSQL text holds no NUL; runs of whitespace carry nothing for search."""
    return re.sub(r"[\x00\s]+", " ", text).strip()


def _pdf_text(path: Path, max_chars: int) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    parts: list[str] = []
    size = 0
    for page in reader.pages:
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text)
        if size >= max_chars:
            break
    return "\n".join(parts)


class _TextOfHtml(HTMLParser):
    SKIPPED = {"script", "style", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return " ".join(parser.parts)


_MARKDOWN_SYNTAX = re.compile(
    r"(^\s{0,3}#{1,6}\s+|^\s*[-*+>]\s+|[*_`~]{1,3}|!?\[|\]\([^)]*\))", re.M
)


def _markdown_text(markdown: str) -> str:
    """Markdown without its markup: headings, emphasis, link targets."""
    return _MARKDOWN_SYNTAX.sub(" ", markdown)
