"""Plain-text articles, and web pages saved under a ``.txt`` name (read as HTML)."""

from __future__ import annotations

from rag.readers import html
from rag.readers.encoding import decode
from rag.readers.extracted import Extracted


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    text, used = decode(raw, encoding)
    page = text.removeprefix("\ufeff")
    if html.looks_like_html(page):
        return html.from_markup(page, used)
    return Extracted(text, "text", used)
