"""Plain-text articles, and web pages saved under a ``.txt`` name (read as HTML)."""

from __future__ import annotations

import re

from rag.readers import html
from rag.readers.encoding import decode
from rag.readers.extracted import Extracted

_HTML_START = re.compile(r"\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.I)
_HTML_TAG = re.compile(
    r"</?(?:p|div|span|br|a|h[1-6]|article|section|ul|ol|li|table|img|script|style|title|meta)"
    r"(?:\s[^<>]*)?/?>",
    re.I,
)


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    text, used = decode(raw, encoding)
    if looks_like_html(text):
        return html.from_markup(text, used)
    return Extracted(text, "text", used)


def looks_like_html(text: str) -> bool:
    """A document that opens like HTML, or that starts with a tag and holds several; a line
    such as ``<返回更多`` (a scraped back link) is not a tag."""
    head = text[:4096]
    if _HTML_START.match(head):
        return True
    return head.lstrip().startswith("<") and len(_HTML_TAG.findall(head)) >= 3
