"""Load the article folder: decode each file, find its title and metadata, and mark debris.

Scraped news pages carry navigation, share buttons, bylines and copyright footers around the
article. They are recognised line by line with general rules (no per-site lists) and left out
of :attr:`Document.body`; the text itself is kept byte-for-byte so offsets stay valid. Bylines,
datelines and front matter in the header, and bylines and copyright lines closing the article,
are read into :attr:`Document.meta` by :mod:`rag.metadata`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rag.errors import CorpusError
from rag.metadata import (
    SENTENCE_PUNCT,
    FrontMatter,
    MetaField,
    find_date,
    is_byline,
    is_dateline,
    read_copyright,
    read_front_matter,
    read_line,
    title_field,
)
from rag.sentences import strip_span

ARTICLE_SUFFIXES = (".txt", ".md")
TITLE_MAX_CHARS = 64

_INVISIBLE = "\ufeff\u200b"  # a BOM or zero-width space is never content on its own
_CJK = re.compile(r"[\u3400-\u9fff]")
# A title may ask or exclaim, but a line ending like a statement is a paragraph.
_STATEMENT_END = ("。", "；", ";", "…", ".", "，", ",", "：", ":")


@dataclass(frozen=True)
class Document:
    """One article; ``body`` spans and ``meta`` offsets index into ``text``, the decoded file
    left untouched. ``title`` and ``date`` (ISO) repeat the first title and date in ``meta``."""

    id: str
    path: Path
    text: str
    title: str
    date: str | None
    body: tuple[tuple[int, int], ...]
    sha256: str
    meta: tuple[MetaField, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file that looked like an article but could not be used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]

    def fingerprint(self) -> str:
        """Changes whenever any article's bytes, name, or the set of articles changes."""
        digest = hashlib.sha256()
        for doc_id, sha in sorted((d.id, d.sha256) for d in self.documents):
            digest.update(f"{doc_id}\0{sha}\n".encode())
        return digest.hexdigest()


class _Unusable(Exception):
    """Why one file cannot be an article; becomes a CorpusError or a Skipped entry."""


def load_document(path: Path) -> Document:
    """Read one article; raises :class:`CorpusError` naming the file if it is unusable."""
    try:
        return _parse(path, path.name, _read(path))
    except _Unusable as exc:
        raise CorpusError(f"{path}: {exc}") from None


def load_corpus(directory: Path) -> Corpus:
    """Every ``.txt``/``.md`` article under ``directory``, searched recursively.

    A document's id is its path relative to ``directory`` in POSIX form, which is the bare file
    name for a flat folder. Hidden files and folders are ignored; unusable files are listed in
    ``skipped`` with the reason. Raises :class:`CorpusError` if nothing usable remains.
    """
    if not directory.exists():
        raise CorpusError(f"corpus folder not found: {directory}")
    if not directory.is_dir():
        raise CorpusError(f"corpus path is not a folder: {directory}")
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for path in _candidates(directory):
        try:
            documents.append(_parse(path, path.relative_to(directory).as_posix(), _read(path)))
        except _Unusable as exc:
            skipped.append(Skipped(path, str(exc)))
    if not documents:
        detail = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped)
        raise CorpusError(
            f"no usable .txt/.md article in {directory}" + (f" ({detail})" if detail else "")
        )
    documents.sort(key=lambda d: d.id)
    return Corpus(tuple(documents), tuple(skipped))


def _candidates(directory: Path) -> Iterator[Path]:
    # os.walk does not follow symlinked folders, so a link loop cannot hang the load.
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        # A folder named like an article is reported, not silently passed over.
        for name in sorted(files + [d for d in dirs if d.lower().endswith(ARTICLE_SUFFIXES)]):
            if not name.startswith(".") and name.lower().endswith(ARTICLE_SUFFIXES):
                yield Path(root, name)


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise _Unusable("is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise _Unusable("is not a regular file")
        return path.read_bytes()
    except PermissionError:
        raise _Unusable("permission denied") from None
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None


def _parse(path: Path, doc_id: str, raw: bytes) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise _Unusable(f"not valid UTF-8 (byte 0x{bad:02x} at offset {exc.start})") from None
    if not text:
        raise _Unusable("is empty")
    lines = _split_lines(text)
    if all(line.blank for line in lines):
        raise _Unusable("holds only whitespace")
    layout = _lay_out(text, lines, markdown=path.suffix.lower() == ".md")
    if not layout.body:
        raise _Unusable("has no article text besides its title, navigation and bylines")
    return Document(
        id=doc_id,
        path=path,
        text=text,
        title=layout.title or path.stem,
        date=layout.date,
        body=layout.body,
        sha256=hashlib.sha256(raw).hexdigest(),
        meta=layout.meta,
    )


class _Line(NamedTuple):
    start: int  # offsets of the line's content, surrounding whitespace excluded
    end: int
    text: str

    @property
    def blank(self) -> bool:
        return self.start == self.end


class _Layout(NamedTuple):
    title: str | None
    date: str | None
    body: tuple[tuple[int, int], ...]
    meta: tuple[MetaField, ...]


def _split_lines(text: str) -> list[_Line]:
    lines = []
    begin = 0
    for brk in [*re.finditer(r"\r\n|\r|\n", text), None]:
        stop = brk.start() if brk else len(text)
        s, e = strip_span(text, begin, stop, also=_INVISIBLE)
        lines.append(_Line(s, e, text[s:e]))
        begin = brk.end() if brk else stop
    return lines


def _lay_out(text: str, lines: list[_Line], *, markdown: bool) -> _Layout:
    """Classify lines into title, debris and content, then group content into body spans."""
    debris = [not line.blank and is_debris(line.text) for line in lines]
    spans = [(line.start, line.end) for line in lines]
    front = read_front_matter(text, spans) if markdown else FrontMatter(0, ())
    debris[: front.lines] = [True] * front.lines
    _cut_trailer(text, lines, debris)

    meta = list(front.fields)
    # A title given in front matter leaves every line of the text where it is.
    has_title = any(field.name == "title" for field in meta)
    title_at = -1 if has_title else _find_title(lines, debris, markdown)
    if title_at >= 0:
        debris[title_at] = True
        meta.append(title_field(text, lines[title_at].start, lines[title_at].end))
    meta += _header_fields(text, lines, debris, skip={title_at, *range(front.lines)})
    meta.sort(key=lambda field: field.start)

    title = next((f.value for f in meta if f.name == "title"), None)
    dates = (find_date(f.value) for f in meta if f.name == "date")
    return _Layout(title, next(filter(None, dates), None), _body_spans(lines, debris), tuple(meta))


def _header_fields(
    text: str, lines: list[_Line], debris: list[bool], *, skip: set[int]
) -> list[MetaField]:
    """Fields of the debris lines above the first paragraph, of the bylines after the last one
    up to the footer (``（责任编辑:赵六）``), and of copyright lines in the footer. Bylines inside
    the body are captions or data credits, and datelines below it belong to related-story
    lists, so neither is read."""
    content = [i for i, line in enumerate(lines) if not line.blank and not debris[i]]
    if not content:
        return []
    fields: list[MetaField] = []
    for i in range(content[0]):
        if debris[i] and i not in skip:
            fields += read_line(text, lines[i].start, lines[i].end)
    footer = False
    for line in lines[content[-1] + 1 :]:
        footer = footer or _is_trailer(line.text)
        if footer:
            fields += read_copyright(text, line.start, line.end)
        elif is_byline(line.text):
            fields += read_line(text, line.start, line.end)
    return fields


def _body_spans(lines: list[_Line], debris: list[bool]) -> tuple[tuple[int, int], ...]:
    """Runs of content lines; blank lines join a run, a debris line ends it."""
    spans: list[tuple[int, int]] = []
    run: list[_Line] = []
    for line, junk in [*zip(lines, debris, strict=True), (None, True)]:
        if line is not None and not junk:
            if not line.blank:
                run.append(line)
        elif run:
            spans.append((run[0].start, run[-1].end))
            run = []
    return tuple(spans)


def _find_title(lines: list[_Line], debris: list[bool], markdown: bool) -> int:
    """Index of the title line or -1: a leading ``# heading`` in Markdown, else the first
    non-debris line if it is short and does not read like a sentence."""
    top = [i for i, line in enumerate(lines) if not line.blank and not debris[i]][:10]
    if markdown:
        for i in top:
            if re.match(r"#\s", lines[i].text):
                return i
    if top and _looks_like_title(lines[top[0]].text):
        return top[0]
    return -1


def _looks_like_title(line: str) -> bool:
    return len(line) <= TITLE_MAX_CHARS and not line.endswith(_STATEMENT_END)


# --- debris rules -------------------------------------------------------------------------
# Each rule looks at one stripped line. Half- and full-width punctuation are both accepted
# because scraped Chinese pages mix them freely.

_CRUMB_SEP = re.compile(r"\s*(?:[|｜>＞»›<‹«←→]|&gt;|&lt;)+\s*")
_NAVIGATION = re.compile(
    r"(?:[<‹«←]\s*)?返回\S{0,6}$"  # 返回更多, <返回首页
    r"|(?:当前|您的|你的|所在)?位置\s*[:：]"  # 当前位置:首页|资讯
)
_SHARE = re.compile(
    r"(?:加入收藏|收藏本(?:文|页|站)|设为首页|分享(?:到|至|给|本文)|一键分享|扫一扫|扫码"
    r"|打印(?:本页|本文|此文)|关闭(?:窗口|本页)|字号\s*[:：])"
    r"|(?:分享|收藏|打印|评论|点赞|转发|在看)$"
)
_TRAILER_START = re.compile(
    r"[^\w]*?(?:免责声明|版权声明|特别声明|声明\s*[:：]|转载请注明|(?:禁止|谢绝|请勿)转载"
    r"|未经(?:授权|许可|允许).{0,20}转载|阅读原文|原文链接)"
)
_TRAILER_HEADING = re.compile(
    r"[^\w]*(?:(?:相关|推荐|延伸|热门|更多|精彩|往期)(?:推荐|阅读|文章|新闻|资讯|报道|内容|回顾)"
    r"|猜你喜欢|(?:THE\s+)?END|完)(?:\s*[:：>»›|｜].*|[^\w]*)$",
    re.IGNORECASE,
)
_TRAILER_ANYWHERE = re.compile(
    r"Copyright|©|\(c\)\s*\d{4}|版权所有|All rights reserved|ICP[备证]|公网安备", re.IGNORECASE
)


def is_debris(line: str) -> bool:
    """Whether a stripped line is page furniture rather than article text."""
    return any(
        rule(line) for rule in (_is_navigation, _is_share, is_byline, is_dateline, _is_trailer)
    )


def _is_navigation(line: str) -> bool:
    if len(line) <= 60 and _NAVIGATION.match(line):
        return True
    if len(line) > 60:
        return False
    if _CRUMB_SEP.search(line):
        items = [item for item in _CRUMB_SEP.split(line) if item]
        return all(len(item) <= 8 and not SENTENCE_PUNCT.search(item) for item in items)
    # A menu: four or more tiny items separated by spaces (首页 新闻 科技 财经), mostly Chinese
    # so that a short English phrase is not mistaken for one.
    words = line.split()
    return (
        len(words) >= 4
        and all(len(w) <= 4 for w in words)
        and sum(bool(_CJK.search(w)) for w in words) >= 3
        and not SENTENCE_PUNCT.search(line)
    )


def _is_share(line: str) -> bool:
    return len(line) <= 30 and not SENTENCE_PUNCT.match(line[-1]) and bool(_SHARE.match(line))


def _is_trailer(line: str) -> bool:
    if _TRAILER_START.match(line):
        return True
    if len(line) <= 24 and _TRAILER_HEADING.match(line):
        return True
    return len(line) <= 200 and bool(_TRAILER_ANYWHERE.search(line))


def _cut_trailer(text: str, lines: list[_Line], debris: list[bool]) -> None:
    """Past a footer marker in the second half of the text, every line is debris: related-story
    lists and disclaimers follow it and look like ordinary short paragraphs."""
    seen_content = False
    for i, line in enumerate(lines):
        if line.blank:
            continue
        if seen_content and line.start * 2 >= len(text) and _is_trailer(line.text):
            debris[i:] = [True] * (len(lines) - i)
            return
        seen_content = seen_content or not debris[i]
