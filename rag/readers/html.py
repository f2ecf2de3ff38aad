"""Web pages: the main article text and its metadata, as trafilatura finds them.

Navigation, footers, comments and ads are left out by trafilatura; its result (a small XML
tree of headings, paragraphs, lists and tables) is written out as plain lines, one paragraph
per block, so quotes never carry tags.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from configparser import ConfigParser
from typing import TYPE_CHECKING

from rag.metadata import FieldName
from rag.readers.encoding import decode
from rag.readers.errors import Unreadable
from rag.readers.extracted import Extracted, TextBuilder, one_line, with_header

if TYPE_CHECKING:  # trafilatura and lxml load on the first web page: most folders have none
    from lxml import etree
    from trafilatura.settings import Document as TrafilaturaDocument

_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_MIN_CHARS = 40
_HTML_START = re.compile(r"\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.I)
_HTML_TAG = re.compile(
    r"</?(?:p|div|span|br|a|h[1-6]|article|section|ul|ol|li|table|img|script|style|title|meta)"
    r"(?:\s[^<>]*)?/?>",
    re.I,
)


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    markup, used = decode(raw, encoding)
    return from_markup(markup.removeprefix("\ufeff"), used)


def looks_like_html(text: str) -> bool:
    """A document that opens like HTML, or that starts with a tag and holds several; a line
    such as ``<返回更多`` (a scraped back link) is not a tag."""
    head = text[:4096]
    if _HTML_START.match(head):
        return True
    return head.lstrip().startswith("<") and len(_HTML_TAG.findall(head)) >= 3


def from_markup(markup: str, encoding: str | None) -> Extracted:
    """The article in an HTML document already decoded."""
    # A short page may need trafilatura's more lenient mode.
    doc = _extract(markup, recall=False) or _extract(markup, recall=True)
    if doc is None:
        raise Unreadable("holds no article text that trafilatura could find")
    body = TextBuilder()
    for block in _blocks(doc.body):
        body.add(block)
    if not body.text().strip():
        raise Unreadable("holds no article text that trafilatura could find")
    meta: list[tuple[FieldName, str]] = [
        ("title", doc.title or ""),
        ("date", doc.date or ""),
        ("source", doc.sitename or ""),
        ("author", doc.author or _meta_author(markup)),
    ]
    return with_header(body.text(), meta, format="html", encoding=encoding)


def _extract(markup: str, *, recall: bool) -> TrafilaturaDocument | None:
    import trafilatura
    from trafilatura.settings import Document as TrafilaturaDocument

    doc = trafilatura.bare_extraction(
        markup,
        config=_config(),
        # Dates from the page's markup only: a guess from the text takes the copyright year.
        date_extraction_params={"extensive_search": False, "original_date": True},
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        deduplicate=False,
        favor_recall=recall,
    )
    if not isinstance(doc, TrafilaturaDocument) or doc.body is None:
        return None
    return doc if (doc.text or "").strip() else None


@functools.cache
def _config() -> ConfigParser:
    """trafilatura's defaults with smaller minimum sizes: they count characters, and a
    Chinese article says in 80 what an English one says in 250; below them trafilatura falls
    back to taking the whole page, navigation included."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(_MIN_CHARS))
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    return config


def _blocks(body: etree._Element) -> Iterator[str]:
    """One string per block of trafilatura's output; list items and table rows as lines."""
    for element in body:
        if element.tag == "list":
            lines = [_clean(_inline(item)) for item in element if item.tag == "item"]
        elif element.tag == "table":
            lines = [
                "\t".join(_clean(_inline(cell)) for cell in row) for row in element.iter("row")
            ]
        else:
            lines = [_clean(_inline(element))]
        text = "\n".join(line for line in lines if line.strip())
        if text:
            yield text


def _inline(element: etree._Element) -> str:
    parts = [element.text or ""]
    for child in element:
        parts.append("\n" if child.tag == "lb" else _inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _clean(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _meta_author(markup: str) -> str:
    """``<meta name="author">`` as written: trafilatura drops two-character Chinese names."""
    import trafilatura
    from lxml import etree

    try:
        tree = trafilatura.utils.load_html(markup)
    except (ValueError, etree.LxmlError):
        return ""
    if tree is None:
        return ""
    found = tree.xpath('//meta[translate(@name, "AUTHOR", "author")="author"]/@content')
    return one_line(str(found[0])) if found else ""
