"""What every reader returns, and the header block that shows metadata kept outside the text.

A web page's ``<meta>`` tags, a Markdown front matter or a PDF's document properties are not
part of the text a reader is shown. So that an answer about a title, date or author can still
be cited by offsets, those values are written as a few lines above the article text
(``标题``, ``2025-08-15 · 成都晚报``, ``作者：张三``) and their offsets recorded as fields.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from rag.metadata import FieldName, MetaField, find_date, read_line
from rag.sentences import strip_span

# Labelled header lines, in order; the labels are ones rag.metadata reads as bylines.
_LABELLED: tuple[tuple[FieldName, str], ...] = (
    ("author", "作者"),
    ("editor", "编辑"),
    ("publisher", "出品"),
)
_SPACE = re.compile(r"\s+")
_TOP_LINES = 8  # lines at the top of a body whose bylines and datelines count as shown


@dataclass(frozen=True)
class Extracted:
    """A file turned into the text that is indexed, shown and cited.

    ``fields`` are metadata the reader located in ``text`` (their lines are not article text);
    ``pages`` holds the offset where each page starts, for formats that have pages.
    """

    text: str
    format: str
    encoding: str | None = None
    fields: tuple[MetaField, ...] = ()
    pages: tuple[int, ...] = ()


class TextBuilder:
    """Joins blocks of text and tells where each one landed."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def add(self, block: str, sep: str = "\n\n") -> tuple[int, int]:
        if self._length and block:
            self._parts.append(sep)
            self._length += len(sep)
        start = self._length
        self._parts.append(block)
        self._length += len(block)
        return start, self._length

    def text(self) -> str:
        return "".join(self._parts)


def one_line(value: str) -> str:
    """A metadata value on one line, runs of whitespace collapsed."""
    return _SPACE.sub(" ", value).strip()


def with_header(
    body: str,
    meta: Iterable[tuple[FieldName, str]],
    *,
    format: str,
    encoding: str | None = None,
    fields: Sequence[MetaField] = (),
    pages: Sequence[int] = (),
) -> Extracted:
    """``body`` with header lines for the ``meta`` values it does not already show.

    ``fields`` and ``pages`` are offsets into ``body``; they are moved to match. A title in
    ``fields`` wins over one in ``meta``; a title equal to the body's first line is pointed at
    there, and the other header lines go below it. Values the body's first lines already
    state as bylines or datelines are not repeated.
    """
    fields = list(fields)
    values = _new_values(body, meta)
    titles = values.pop("title", [])
    first = _first_line(body)
    given_title = any(f.name == "title" for f in fields)
    if titles and not given_title and first and one_line(body[slice(*first)]) == titles[0]:
        fields.append(MetaField("title", titles[0], *first, *first))
        titles = []
    header = TextBuilder()
    own: list[MetaField] = []
    if titles and not any(f.name == "title" for f in fields):
        s, e = header.add(titles[0], "\n")
        own.append(MetaField("title", titles[0], s, e, s, e))
    own += _date_line(header, values.get("date", [])[:1], values.get("source", [])[:1])
    for name, label in _LABELLED:
        if values.get(name):
            own += _labelled_line(header, name, label, values[name])
    if not len(header):
        return Extracted(body, format, encoding, tuple(fields), tuple(pages))
    # Below a title on the first line, else at the very top.
    split = 0
    if first is not None and any(f.name == "title" and f.line_start == first[0] for f in fields):
        split = first[1]
    rest = body[split:]
    skipped = len(rest) - len(rest.lstrip("\r\n"))
    before = body[:split] + ("\n" if split else "")
    text = before + header.text() + "\n\n" + rest[skipped:]
    at = len(before)
    own = [_shift(f, at) for f in own]

    def move(offset: int) -> int:
        """Where a body offset lands: unchanged above the header, pushed down below it."""
        if offset < split:
            return offset
        return at + len(header) + 2 + max(offset - split - skipped, 0)

    moved = [_move(f, move) for f in fields]
    return Extracted(text, format, encoding, (*own, *moved), tuple(move(p) for p in pages))


def _new_values(body: str, meta: Iterable[tuple[FieldName, str]]) -> dict[FieldName, list[str]]:
    """``meta`` by field, one line each, dates as ISO, less what the body's top shows."""
    shown = set()
    for match in itertools.islice(re.finditer(r"[^\r\n]+", body), _TOP_LINES):
        start, end = strip_span(body, *match.span())
        for field in read_line(body, start, end):
            shown.add((field.name, find_date(field.value) if field.name == "date" else field.value))
    values: dict[FieldName, list[str]] = {}
    for name, raw in meta:
        value = one_line(raw)
        if name == "date":
            value = find_date(value) or ""
        if value and (name, value) not in shown and value not in values.setdefault(name, []):
            values[name].append(value)
    return values


def _first_line(text: str) -> tuple[int, int] | None:
    match = re.search(r"\S[^\r\n]*", text)
    if match is None:
        return None
    return match.start(), match.start() + len(match.group().rstrip())


def _date_line(header: TextBuilder, dates: list[str], sources: list[str]) -> list[MetaField]:
    if not dates and not sources:
        return []
    line = " · ".join([*dates, *sources]) if dates else f"来源：{sources[0]}"
    s, e = header.add(line, "\n")
    fields = []
    if dates:
        fields.append(MetaField("date", dates[0], s, s + len(dates[0]), s, e))
    if sources:
        at = e - len(sources[0])
        fields.append(MetaField("source", sources[0], at, e, s, e))
    return fields


def _labelled_line(
    header: TextBuilder, name: FieldName, label: str, values: list[str]
) -> list[MetaField]:
    s, e = header.add(f"{label}：" + "、".join(values), "\n")
    fields, at = [], s + len(label) + 1
    for value in values:
        fields.append(MetaField(name, value, at, at + len(value), s, e))
        at += len(value) + 1
    return fields


def _shift(field: MetaField, by: int) -> MetaField:
    return _move(field, lambda offset: offset + by)


def _move(field: MetaField, move: Callable[[int], int]) -> MetaField:
    # A field's line never straddles the insertion point: the header goes between lines.
    return replace(
        field,
        start=move(field.start),
        end=move(field.end - 1) + 1,
        line_start=move(field.line_start),
        line_end=move(field.line_end - 1) + 1,
    )
