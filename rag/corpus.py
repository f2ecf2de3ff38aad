"""Load the article folder: read each file, find its title and metadata, and mark debris.

Each file becomes text through its format's reader (:mod:`rag.readers`: plain text in any of
the usual Chinese encodings, Markdown, HTML, PDF, Word); files that cannot be used, links out
of the folder, undecodable names and oversized files are listed as skipped with the reason.
Scraped news pages carry navigation, share buttons, bylines and copyright footers around the
article. They are recognised line by line with general rules (no per-site lists) and left out
of :attr:`Document.body`; the text itself is kept as read (plain text as decoded, unchanged)
so offsets stay valid. Bylines, datelines and reader-made header lines at the top, and bylines
and copyright lines closing the article, are read into :attr:`Document.meta` by
:mod:`rag.metadata`.
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
    MetaField,
    find_date,
    is_byline,
    is_dateline,
    read_copyright,
    read_line,
    title_field,
)
from rag.readers import SUFFIXES, Unreadable, extract
from rag.sentences import strip_span

ARTICLE_SUFFIXES = SUFFIXES
TITLE_MAX_CHARS = 64
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024

_INVISIBLE = "\ufeff\u200b"  # a BOM or zero-width space is never content on its own
_CJK = re.compile(r"[\u3400-\u9fff]")
# A title may ask or exclaim, but a line ending like a statement is a paragraph.
_STATEMENT_END = ("。", "；", ";", "…", ".", "，", ",", "：", ":")


@dataclass(frozen=True)
class Document:
    """One article; ``body`` spans and ``meta`` offsets index into ``text``, the text a reader
    is shown: the decoded file left untouched for plain text, the extracted text for other
    formats (see :mod:`rag.readers`). ``title`` and ``date`` (ISO) repeat the first title and
    date in ``meta``; ``pages`` holds the offset where each page starts (PDF)."""

    id: str
    path: Path
    text: str
    title: str
    date: str | None
    body: tuple[tuple[int, int], ...]
    sha256: str
    meta: tuple[MetaField, ...] = ()
    format: str = "text"
    encoding: str | None = "utf-8"
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file that looked like an article but could not be used, and why. ``path`` is safe to
    print and to write as UTF-8: bytes of a name that are not UTF-8 appear as ``\\xNN``."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ReadOptions:
    """How files are read: a fixed encoding for text files (None: detect), a size limit."""

    encoding: str | None = None
    max_bytes: int = DEFAULT_MAX_FILE_BYTES

    @classmethod
    def from_settings(cls) -> ReadOptions:
        from rag.settings import get_settings  # read when loading, never at import time

        settings = get_settings()
        return cls(settings.corpus_encoding, settings.max_file_bytes)


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]

    def fingerprint(self) -> str:
        """Changes whenever any article's bytes, name, encoding read, or the set of articles
        changes."""
        digest = hashlib.sha256()
        for doc_id, sha, encoding in sorted((d.id, d.sha256, d.encoding) for d in self.documents):
            digest.update(f"{doc_id}\0{sha}\0{encoding or ''}\n".encode())
        return digest.hexdigest()


class _Unusable(Exception):
    """Why one file cannot be an article; becomes a CorpusError or a Skipped entry."""


def load_document(path: Path, options: ReadOptions | None = None) -> Document:
    """Read one article; raises :class:`CorpusError` naming the file if it is unusable."""
    options = options or ReadOptions.from_settings()
    try:
        return _parse(path, path.name, _read(path, options.max_bytes), options)
    except _Unusable as exc:
        raise CorpusError(f"{printable(path)}: {exc}") from None


def load_corpus(directory: Path, options: ReadOptions | None = None) -> Corpus:
    """Every article (``.txt .md .html .htm .pdf .docx``) under ``directory``, searched
    recursively.

    A document's id is its path relative to ``directory`` in POSIX form, which is the bare file
    name for a flat folder. Hidden files and folders are ignored; unusable files are listed in
    ``skipped`` with the reason: among them symbolic links leading outside ``directory``,
    names that are not UTF-8, empty files and files over ``options.max_bytes``. Raises
    :class:`CorpusError` if nothing usable remains.
    """
    if not directory.exists():
        raise CorpusError(f"corpus folder not found: {printable(directory)}")
    if not directory.is_dir():
        raise CorpusError(f"corpus path is not a folder: {printable(directory)}")
    if printable(directory) != str(directory):
        raise CorpusError(f"corpus folder name is not valid UTF-8: {printable(directory)}")
    options = options or ReadOptions.from_settings()
    root = directory.resolve()
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for path in _candidates(directory):
        doc_id = path.relative_to(directory).as_posix()
        try:
            _check_place(path, doc_id, root)
            documents.append(_parse(path, doc_id, _read(path, options.max_bytes), options))
        except _Unusable as exc:
            skipped.append(Skipped(Path(printable(path)), str(exc)))
    if not documents:
        detail = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped)
        raise CorpusError(
            f"no usable .txt/.md article or .html/.pdf/.docx document in {printable(directory)}"
            + (f" ({detail})" if detail else "")
        )
    documents.sort(key=lambda d: d.id)
    return Corpus(tuple(documents), tuple(skipped))


def printable(path: Path | str) -> str:
    """``path`` as text that can always be encoded: undecodable name bytes become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _candidates(directory: Path) -> Iterator[Path]:
    # os.walk does not follow symlinked folders, so a link loop cannot hang the load.
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        # A folder named like an article is reported, not silently passed over.
        for name in sorted(files + [d for d in dirs if d.lower().endswith(ARTICLE_SUFFIXES)]):
            if not name.startswith(".") and name.lower().endswith(ARTICLE_SUFFIXES):
                yield Path(root, name)


def _check_place(path: Path, doc_id: str, root: Path) -> None:
    """Refuse an id that cannot be written as UTF-8 and a link that leads out of the folder:
    ``ln -s /etc/passwd corpus/passwd.txt`` must not publish the password file."""
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unusable("file name is not valid UTF-8; rename the file") from None
    if path.is_symlink() and not path.resolve().is_relative_to(root):
        raise _Unusable("is a symbolic link to a file outside the corpus folder")


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        # The link was checked already: read what it resolved to, not the link again.
        real = path.resolve() if path.is_symlink() else path
        info = real.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _Unusable("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("is not a regular file")
        if info.st_size > max_bytes:
            raise _Unusable(
                f"is {info.st_size:,} bytes, over the limit of {max_bytes:,} (RAG_MAX_FILE_BYTES)"
            )
        raw = real.read_bytes()
    except PermissionError:
        raise _Unusable("permission denied") from None
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:  # grew since it was measured
        raise _Unusable(f"is over the limit of {max_bytes:,} bytes (RAG_MAX_FILE_BYTES)")
    if not raw:
        raise _Unusable("is empty")
    return raw


def _parse(path: Path, doc_id: str, raw: bytes, options: ReadOptions) -> Document:
    try:
        extracted = extract(path.name, raw, options.encoding)
    except Unreadable as exc:
        raise _Unusable(str(exc)) from None
    text = extracted.text
    if not text:
        raise _Unusable("is empty" if extracted.format == "text" else "holds no text")
    lines = _split_lines(text)
    if all(line.blank for line in lines):
        raise _Unusable("holds only whitespace")
    layout = _lay_out(text, lines, extracted.fields)
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
        format=extracted.format,
        encoding=extracted.encoding,
        pages=extracted.pages,
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


def _lay_out(text: str, lines: list[_Line], given: tuple[MetaField, ...] = ()) -> _Layout:
    """Classify lines into title, debris and content, then group content into body spans.

    ``given`` are fields a reader located (a header block, a front-matter title, a heading):
    their lines are metadata, not article text."""
    debris = [not line.blank and is_debris(line.text) for line in lines]
    taken = {i for i, line in enumerate(lines) for f in given if _holds(line, f)}
    for i in taken:
        debris[i] = True
    _cut_trailer(text, lines, debris)

    meta = list(given)
    has_title = any(field.name == "title" for field in meta)
    title_at = -1 if has_title else _find_title(lines, debris)
    if title_at >= 0:
        debris[title_at] = True
        meta.append(title_field(text, lines[title_at].start, lines[title_at].end))
    meta += _header_fields(text, lines, debris, skip={title_at, *taken})
    meta.sort(key=lambda field: field.start)

    title = next((f.value for f in meta if f.name == "title"), None)
    dates = (find_date(f.value) for f in meta if f.name == "date")
    return _Layout(title, next(filter(None, dates), None), _body_spans(lines, debris), tuple(meta))


def _holds(line: _Line, field: MetaField) -> bool:
    return not line.blank and field.line_start <= line.start and line.end <= field.line_end


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


def _find_title(lines: list[_Line], debris: list[bool]) -> int:
    """Index of the title line or -1: the first non-debris line if it is short and does not
    read like a sentence (a Markdown heading is found by its reader)."""
    top = [i for i, line in enumerate(lines) if not line.blank and not debris[i]][:1]
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
