"""Article metadata (title, author, editor, source, publisher, date, site) read from the text.

Scraped articles carry their metadata as lines of text: a byline (``作者|齐健``, several fields
on one line as in ``作者:赵赛坡发布时间:2024-09-21``), a dateline (``2023-04-12  虎嗅APP``), a
YAML front-matter block, the site's copyright footer, an emphasised dateline
(``*2025-08-15 · 成都晚报*``). Every value keeps its offsets into the text shown, and those of
the line it sits on, so an answer about who wrote an article is cited like any quote. Metadata
that lives outside that text (HTML ``<meta>``, front matter, PDF and Word properties) is
written into it as header lines by :mod:`rag.readers.extracted`. The loader decides which
lines are header lines; this module reads them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple

from rag.sentences import strip_span

# ``source`` is where the article says it comes from, ``site`` the website it was taken from.
FieldName = Literal["title", "author", "editor", "source", "publisher", "date", "site"]


@dataclass(frozen=True)
class MetaField:
    """One value: ``text[start:end] == value``; ``text[line_start:line_end]`` is its line."""

    name: FieldName
    value: str
    start: int
    end: int
    line_start: int
    line_end: int


class FrontMatter(NamedTuple):
    lines: int  # how many leading lines the block covers, delimiters included
    fields: tuple[MetaField, ...]


# Byline labels and the field each fills. A label mapped to None is still recognised, so it ends
# the value before it and marks its line as a byline, but credits for pictures, layout or
# proofreading are not facts about who wrote or published the article.
LABELS: dict[str, FieldName | None] = {
    **dict.fromkeys("作者 记者 本报记者 本刊记者 特约记者 通讯员 撰文 文 文字".split(), "author"),
    **dict.fromkeys("编辑 责任编辑 主编辑 值班编辑 责编".split(), "editor"),
    **dict.fromkeys("来源 信息来源 稿源 来自 出处".split(), "source"),
    "出品": "publisher",
    **dict.fromkeys("发布时间 发表时间 发布日期 发表日期 时间 日期".split(), "date"),
    **dict.fromkeys(
        "更新时间 更新日期 编者 策划 监制 统筹 视觉 设计 摄影 图 头图 题图 配图 封面图 图片"
        " 图片来源 数据来源 资料来源 原标题 原文链接 原文地址 校对 审核 审校 排版 翻译 编译"
        " 转载".split(),
        None,
    ),
}
# Front-matter keys besides the Chinese labels above (compared lower-cased).
_KEYS: dict[str, FieldName] = {
    "title": "title",
    "author": "author",
    "authors": "author",
    "by": "author",
    "editor": "editor",
    "source": "source",
    "site": "source",
    "sitename": "source",
    "publisher": "publisher",
    "date": "date",
    "published": "date",
    "pubdate": "date",
    "publish_date": "date",
}

_SEP = r"[|｜丨:：/／]"
# Half- and full-width sentence punctuation: a line holding it is text, not a name or a label.
SENTENCE_PUNCT = re.compile(r"[。！？!?；;，,]")
_LABEL = "|".join(sorted(map(re.escape, LABELS), key=len, reverse=True))
_BYLINE = re.compile(rf"[(（【\[]?\s*(?:{_LABEL})\s*{_SEP}")
_LABELLED = re.compile(rf"(?P<label>{_LABEL})\s*{_SEP}")
_BYLINE_SPACED = re.compile(
    r"(?P<label>(?:本报|特约)?记者|作者|编辑|责任编辑|撰文|摄影)\s+(?P<value>\S{1,10})$"
)
# Characters that may sit between a value and the next label, or around a bracketed byline.
_VALUE_TRIM = "|｜丨/／·•,，;；、-—:：\"'“”"
_PAIRS = {")": "(", "）": "（", "】": "【", "]": "["}
_DATE = re.compile(
    r"(?P<day>(?<!\d)(?P<y>\d{4})(?:(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"
    r"|\s*年\s*(?P<cm>\d{1,2})\s*月\s*(?P<cd>\d{1,2})\s*[日号])(?!\d))"
    r"(?:\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?"
)
_EMPHASIS_WRAP = re.compile(r"(?P<mark>[*_]{1,3})(?P<inner>\S(?:.*\S)?)(?P=mark)")
_COMMA = re.compile(r"[,，]")
_BREAK = re.compile(r"[\r\n]")
_DATE_SEP = " \t|｜丨·•/／-—:："
_COPYRIGHT = re.compile(
    r"(?:copyright\s*)?(?:©|\(c\)|copyright)\s*(?:(?:19|20)\d{2}(?:\s*[-–—]\s*(?:19|20)\d{2})?)?"
    r"\s*(?P<site>.+?)[\s.,，。]*(?:版权所有|all rights reserved|\S*ICP[备证]|\S*公网安备|$)",
    re.IGNORECASE,
)
_WEEKDAY = re.compile(
    r"(?:星期|周|礼拜)[一二三四五六日天]|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day", re.I
)


class _Span(NamedTuple):
    name: FieldName
    start: int  # relative to the line
    end: int


def find_date(text: str) -> str | None:
    """The first real calendar date in ``text`` as ISO ``YYYY-MM-DD``, if any."""
    return next(iter(find_dates(text)), None)


def find_dates(text: str) -> list[str]:
    """Every real calendar date in ``text``, as ISO ``YYYY-MM-DD``, in order."""
    return [iso for match in _DATE.finditer(text) if (iso := _iso(match))]


def _iso(match: re.Match[str]) -> str | None:
    year, month, day = match["y"], match["m"] or match["cm"], match["d"] or match["cd"]
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return date.isoformat() if 1900 <= date.year <= 2100 else None


def is_byline(line: str) -> bool:
    """A stripped line that starts with a byline label (``作者|齐健``, ``(责任编辑:赵六)``)."""
    if len(line) > 100 or line.endswith(("。", "；", ";")):
        return False
    return bool(_BYLINE.match(line) or _BYLINE_SPACED.match(line))


def is_dateline(line: str) -> bool:
    """A date alone, or a date and a short source name (``2023-04-12  虎嗅APP``)."""
    return _dateline(line) is not None


def _dateline(line: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Spans of the date (time of day left out) and of the rest, which may be empty. Emphasis
    marks around the whole line (``*2025-08-15 · 成都晚报*``) are not part of either."""
    wrap = _EMPHASIS_WRAP.fullmatch(line)
    if wrap:
        found = _dateline(wrap["inner"])
        if found is None:
            return None
        at = wrap.start("inner")
        (ds, de), (ns, ne) = found
        return (ds + at, de + at), (ns + at, ne + at)
    if len(line) > 48:
        return None
    matches = [m for m in _DATE.finditer(line) if _iso(m)]
    if not matches:
        return None
    head, tail = matches[0], matches[-1]
    if head.start() == 0:
        date, rest = head, (head.end(), len(line))
        joined = rest[0] == rest[1] or line[rest[0]].isspace() or line[rest[0]] in _DATE_SEP
    elif tail.end() == len(line):
        date, rest = tail, (0, tail.start())
        joined = line[rest[1] - 1].isspace() or line[rest[1] - 1] in _DATE_SEP
    else:
        return None
    rest = strip_span(line, *rest, also=_DATE_SEP)
    name = line[rest[0] : rest[1]]
    if not joined or len(name) > 24 or SENTENCE_PUNCT.search(name):
        return None
    return date.span("day"), rest


def read_line(text: str, start: int, end: int) -> list[MetaField]:
    """The fields of the byline or dateline ``text[start:end]`` (a line without its
    surrounding whitespace); none when it is neither."""
    line = text[start:end]
    if not (is_byline(line) or is_dateline(line)):
        return []
    return [
        MetaField(n, text[start + s : start + e], start + s, start + e, start, end)
        for n, s, e in _line_spans(line)
    ]


def _line_spans(line: str) -> list[_Span]:
    labels = [m for m in _LABELLED.finditer(line) if _is_label(line, m)]
    if not labels:
        spaced = _BYLINE_SPACED.match(line)
        if spaced:
            name = LABELS[spaced["label"]]
            return [_Span(name, *spaced.span("value"))] if name else []
        return _date_and_name(line, 0, len(line), "source")
    # Before the first label only a dateline counts (``2024-09-21 来源:新华社``).
    spans = _date_and_name(line, 0, labels[0].start(), "source")
    for label, after in zip(labels, [*labels[1:], None], strict=True):
        name = LABELS[label["label"]]
        s, e = _trim_value(line, label.end(), after.start() if after else len(line))
        if name is None or s == e:
            continue
        if name == "date":
            day = next((m for m in _DATE.finditer(line, s, e) if _iso(m)), None)
            spans += [_Span("date", *day.span("day"))] if day else []
        else:
            spans += _date_and_name(line, s, e, name) or [_Span(name, s, e)]
    return spans


def _is_label(line: str, match: re.Match[str]) -> bool:
    """A one-character label (文, 图) inside a line must follow a break, not a word: 中文/英文
    is not a byline, while 坡发布时间: after a name is."""
    at = match.start()
    if len(match["label"]) > 1 or at == 0:
        return True
    before = line[at - 1]
    return before.isspace() or before in _VALUE_TRIM or before in "(（【["


def _date_and_name(line: str, start: int, end: int, name: FieldName) -> list[_Span]:
    """A dateline in ``line[start:end]`` as a date and, if a name goes with it, ``name``."""
    found = _dateline(line[start:end])
    if found is None:
        return []
    (ds, de), (ns, ne) = found
    spans = [_Span("date", start + ds, start + de)]
    if ns < ne and not _WEEKDAY.fullmatch(line[start + ns : start + ne]):
        spans.append(_Span(name, start + ns, start + ne))
    return sorted(spans, key=lambda span: span.start)


def _trim_value(line: str, start: int, end: int) -> tuple[int, int]:
    """Drop spaces, separators and a closing bracket opened before the value (``(编辑:赵六)``)."""
    s, e = strip_span(line, start, end, also=_VALUE_TRIM)
    while s < e and line[e - 1] in _PAIRS and _unbalanced(line[s:e], line[e - 1]):
        s, e = strip_span(line, s, e - 1, also=_VALUE_TRIM)
    return s, e


def _unbalanced(value: str, closer: str) -> bool:
    return value.count(closer) > value.count(_PAIRS[closer])


def read_copyright(text: str, start: int, end: int) -> list[MetaField]:
    """The site named by a copyright footer (``Copyright © 2024 aigcdaily.cn ... 版权所有``)."""
    match = _COPYRIGHT.match(text, start, end)
    if match is None:
        return []
    site, (s, e) = match["site"], match.span("site")
    if not re.search(r"\w", site) or len(site) > 60 or SENTENCE_PUNCT.search(site):
        return []
    return [MetaField("site", site, s, e, start, end)]


def title_field(text: str, start: int, end: int) -> MetaField:
    """The title on the line ``text[start:end]``, Markdown ``#`` marks left out."""
    line = text[start:end]
    lead = re.match(r"#+\s*", line)
    s = lead.end() if lead else 0
    closing = re.search(r"\s+#+$", line)
    e = closing.start() if closing and closing.start() >= s else len(line)
    if s >= e:  # nothing but marks: the marks are the title
        s, e = 0, len(line)
    return MetaField("title", line[s:e], start + s, start + e, start, end)


def read_front_matter(text: str, lines: Sequence[tuple[int, int]]) -> FrontMatter:
    """A leading ``---`` YAML block of ``key: value`` lines; ``lines`` are the text's line
    spans without surrounding whitespace. Lists (``[a, b]`` or ``- a`` lines) give one field
    per item; keys this module does not know are skipped."""
    if not lines or text[slice(*lines[0])] != "---":
        return FrontMatter(0, ())
    top = lines[: min(len(lines), 40)]
    close = next((i for i in range(1, len(top)) if text[slice(*top[i])] in ("---", "...")), 0)
    if not close:
        return FrontMatter(0, ())
    fields: list[MetaField] = []
    listed: FieldName | None = None  # the key whose ``- item`` lines follow
    for start, end in lines[1:close]:
        line = text[start:end]
        if line.startswith("- "):
            name, value_at = listed, start + 2
        else:
            key, sep, value = line.partition(":")
            name = (_KEYS.get(key.strip().lower()) or LABELS.get(key.strip())) if sep else None
            listed = name if not value.strip() else None
            value_at = start + len(key) + 1
        if name is not None:
            fields += _front_values(text, name, value_at, end, (start, end))
    return FrontMatter(close + 1, tuple(fields))


def _front_values(
    text: str, name: FieldName, start: int, end: int, line: tuple[int, int]
) -> list[MetaField]:
    s, e = strip_span(text, start, end, also="\"'")
    pieces = [(s, e)]
    if text[s:e].startswith("[") and text[s:e].endswith("]"):
        bounds = [s, *(m.start() for m in _COMMA.finditer(text, s + 1, e - 1)), e - 1]
        pieces = [(a + 1, b) for a, b in pairwise(bounds)]
    fields = []
    for a, b in pieces:
        a, b = strip_span(text, a, b, also="\"'")
        if name == "date":
            day = next((m for m in _DATE.finditer(text, a, b) if _iso(m)), None)
            if day is None:
                continue
            a, b = day.span("day")
        if a < b:
            fields.append(MetaField(name, text[a:b], a, b, *line))
    return fields


def locate_field(text: str, name: FieldName, value: str) -> MetaField | None:
    """``value`` found in ``text`` as a field: for parsers that get metadata apart from the
    text (HTML ``<meta>``), so the value can be cited only where the reader can see it."""
    at = text.find(value) if value.strip() else -1
    if at < 0:
        return None
    line_start = max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
    brk = _BREAK.search(text, at + len(value))
    line = strip_span(text, line_start, brk.start() if brk else len(text))
    return MetaField(name, value, at, at + len(value), *line)
