"""Markdown articles rendered as plain text, so no quote carries ``#``, ``-`` or ``**``.

markdown-it-py parses the file (CommonMark plus tables and strikethrough); the text kept is
what a reader of the rendered page sees: headings, paragraphs, one line per list item, table
rows with tab-separated cells, code as written. A leading YAML front matter is read by
:func:`rag.metadata.read_front_matter` and shown as header lines (see
:mod:`rag.readers.extracted`); without a title there, the first level-one heading is it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from rag.metadata import MetaField, read_front_matter
from rag.readers import html
from rag.readers.encoding import decode
from rag.readers.errors import Unreadable
from rag.readers.extracted import Extracted, TextBuilder, with_header
from rag.sentences import strip_span

_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Emphasis CommonMark leaves as text next to CJK punctuation (``**“三次”**后``).
_LEFT_EMPHASIS = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_TAG = re.compile(r"<[^<>]*>")
_HIDDEN = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|$)", re.S | re.I)  # code, not text
_TITLE_WITHIN = 10  # blocks from the top where a level-one heading is taken as the title


def read(raw: bytes, encoding: str | None = None) -> Extracted:
    source, used = decode(raw, encoding)
    source = source.removeprefix("\ufeff")  # rendered text: a BOM would hide a heading
    if not source.strip():
        raise Unreadable("holds only whitespace")
    if html.looks_like_html(source):  # a saved web page with the wrong ending
        return html.from_markup(source, used)
    front = read_front_matter(source, _line_spans(source))
    rest = source
    if front.lines:
        ends = [m.end() for m in re.finditer(r"\r\n|\r|\n", source)]
        rest = source[ends[front.lines - 1] :] if front.lines <= len(ends) else ""
    body, title = render(rest)
    has_title = any(field.name == "title" for field in front.fields)
    fields = [] if has_title or title is None else [title]
    meta = [(field.name, field.value) for field in front.fields]
    return with_header(body, meta, format="markdown", encoding=used, fields=fields)


def render(source: str) -> tuple[str, MetaField | None]:
    """The plain text of ``source`` and, if one opens it, the level-one heading as a title."""
    out = TextBuilder()
    title: MetaField | None = None
    tokens = _PARSER.parse(source)
    blocks = 0
    item_line = False  # inside a list after its first line: items are lines, not blocks
    row: list[str] = []
    rows = 0
    items = 0  # list items open around the current token
    for i, token in enumerate(tokens):
        items += {"list_item_open": 1, "list_item_close": -1}.get(token.type, 0)
        if token.type in ("bullet_list_open", "ordered_list_open", "table_open"):
            item_line, rows = False, 0
        elif token.type in ("th_open", "td_open"):
            row.append(_inline(tokens[i + 1].children or []).strip())
        elif token.type == "tr_close":
            out.add("\t".join(row), "\n" if rows else "\n\n")
            row, rows = [], rows + 1
        elif token.type == "inline" and tokens[i - 1].type in ("paragraph_open", "heading_open"):
            text = _inline(token.children or []).strip()
            if not text:
                continue
            in_list = items > 0
            s, e = out.add(text, "\n" if in_list and item_line else "\n\n")
            item_line = in_list
            blocks += 1
            opener = tokens[i - 1]
            if (
                opener.tag == "h1"
                and title is None
                and blocks <= _TITLE_WITHIN
                and "\n" not in text
            ):
                title = MetaField("title", text, s, e, s, e)
        elif token.type in ("fence", "code_block"):
            out.add(token.content.rstrip("\n"))
            blocks += 1
        elif token.type == "html_block":
            text = _TAG.sub("", _HIDDEN.sub("", token.content)).strip()
            if text:
                out.add(text)
                blocks += 1
    return out.text(), title


def _inline(children: Sequence[Token]) -> str:
    """Text and code of an inline run; images (their alt text describes a picture) and inline
    HTML tags are left out."""
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    text = "".join(parts)
    previous = None
    while previous != text:
        previous, text = text, _LEFT_EMPHASIS.sub(r"\2", text)
    return text


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, begin = [], 0
    for brk in [*re.finditer(r"\r\n|\r|\n", text), None]:
        stop = brk.start() if brk else len(text)
        spans.append(strip_span(text, begin, stop, also="\ufeff"))
        begin = brk.end() if brk else stop
    return spans
