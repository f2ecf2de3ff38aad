"""Load the article folder: decode each file, find its title and date, and mark debris.

Scraped news pages carry navigation, share buttons, bylines and copyright footers around the
article. They are recognised line by line with general rules (no per-site lists) and left out
of :attr:`Document.body`; the text itself is kept byte-for-byte so offsets stay valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rag.errors import CorpusError
from rag.sentences import strip_span

ARTICLE_SUFFIXES = (".txt", ".md")
TITLE_MAX_CHARS = 64

_INVISIBLE = "\ufeff\u200b"  # a BOM or zero-width space is never content on its own
_PUNCT = re.compile(r"[。！？!?；;，,]")
_CJK = re.compile(r"[\u3400-\u9fff]")
# A title may ask or exclaim, but a line ending like a statement is a paragraph.
_STATEMENT_END = ("。", "；", ";", "…", ".", "，", ",", "：", ":")


@dataclass(frozen=True)
class Document:
    """One article; ``body`` spans index into ``text``, the decoded file left untouched."""

    id: str
    path: Path
    text: str
    title: str
    date: str | None
    body: tuple[tuple[int, int], ...]
    sha256: str


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


class _FrontMatter(NamedTuple):
    lines: int  # how many leading lines the block covers, delimiters included
    title: str | None
    date: str | None


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
    meta = _front_matter(lines) if markdown else _FrontMatter(0, None, None)
    debris[: meta.lines] = [True] * meta.lines
    _cut_trailer(text, lines, debris)

    # A title given in front matter leaves every line of the text where it is.
    title_at = -1 if meta.title else _find_title(lines, debris, markdown)
    title = meta.title or (_title_text(lines[title_at].text) if title_at >= 0 else None)
    if title_at >= 0:
        debris[title_at] = True

    # The date is read from the header: debris lines above the first paragraph.
    date = find_date(meta.date or "")
    for i, line in enumerate(lines):
        if date or not (line.blank or debris[i]):
            break
        if i != title_at:
            date = find_date(line.text)
    return _Layout(title, date, _body_spans(lines, debris))


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


def _title_text(line: str) -> str:
    return re.sub(r"^#+\s*|\s+#+$", "", line) or line


def _front_matter(lines: list[_Line]) -> _FrontMatter:
    """A leading ``---`` YAML block is metadata, not article text; keep its title and date."""
    if not lines or lines[0].text != "---":
        return _FrontMatter(0, None, None)
    close = next((i for i in range(1, min(len(lines), 40)) if lines[i].text in ("---", "...")), 0)
    if not close:
        return _FrontMatter(0, None, None)
    fields = {}
    for line in lines[1:close]:
        key, sep, value = line.text.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("\"'") or None
    return _FrontMatter(close + 1, fields.get("title"), fields.get("date"))


# --- debris rules -------------------------------------------------------------------------
# Each rule looks at one stripped line. Half- and full-width punctuation are both accepted
# because scraped Chinese pages mix them freely.

_SEP = r"[|｜丨:：/／]"
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
_BYLINE_LABELS = (
    r"(?:本报|本刊|特约)?记者|作者|通讯员|(?:责任|主|值班)?编辑|责编|编者|撰文|文字?|出品"
    r"|策划|监制|统筹|视觉|设计|摄影|图|(?:头|题|配|封面)图|图片|(?:图片|数据|资料|信息)?来源"
    r"|来自|出处|稿源|原标题|原文(?:链接|地址)|(?:发布|发表|更新)(?:时间|日期)|时间|日期"
    r"|校对|审核|审校|排版|翻译|编译|转载"
)
_BYLINE = re.compile(rf"[(（【\[]?\s*(?:{_BYLINE_LABELS})\s*{_SEP}")
_BYLINE_SPACED = re.compile(r"(?:(?:本报|特约)?记者|作者|编辑|责任编辑|撰文|摄影)\s+\S{1,10}$")
_DATE = re.compile(
    r"(?<!\d)(\d{4})(?:([-/.])(\d{1,2})\2(\d{1,2})|\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号])"
    r"(?!\d)(?:\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?"
)
_DATE_SEP = " \t|｜丨·•/／-—:："
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
        rule(line) for rule in (_is_navigation, _is_share, _is_byline, _is_dateline, _is_trailer)
    )


def find_date(text: str) -> str | None:
    """The first real calendar date in ``text`` as ISO ``YYYY-MM-DD``, if any."""
    for match in _DATE.finditer(text):
        year, _, month, day, cn_month, cn_day = match.groups()
        try:
            date = dt.date(int(year), int(month or cn_month), int(day or cn_day))
        except ValueError:
            continue
        if 1900 <= date.year <= 2100:
            return date.isoformat()
    return None


def _is_navigation(line: str) -> bool:
    if len(line) <= 60 and _NAVIGATION.match(line):
        return True
    if len(line) > 60:
        return False
    if _CRUMB_SEP.search(line):
        items = [item for item in _CRUMB_SEP.split(line) if item]
        return all(len(item) <= 8 and not _PUNCT.search(item) for item in items)
    # A menu: four or more tiny items separated by spaces (首页 新闻 科技 财经), mostly Chinese
    # so that a short English phrase is not mistaken for one.
    words = line.split()
    return (
        len(words) >= 4
        and all(len(w) <= 4 for w in words)
        and sum(bool(_CJK.search(w)) for w in words) >= 3
        and not _PUNCT.search(line)
    )


def _is_share(line: str) -> bool:
    return len(line) <= 30 and not _PUNCT.match(line[-1]) and bool(_SHARE.match(line))


def _is_byline(line: str) -> bool:
    if len(line) > 100 or line.endswith(("。", "；", ";")):
        return False
    return bool(_BYLINE.match(line) or _BYLINE_SPACED.match(line))


def _is_dateline(line: str) -> bool:
    """A date alone, or a date and a short source name (``2023-04-12  虎嗅APP``)."""
    if len(line) > 48:
        return False
    matches = [m for m in _DATE.finditer(line) if find_date(m.group())]
    if not matches:
        return False
    head, tail = matches[0], matches[-1]
    if head.start() == 0:
        rest = line[head.end() :]
        joined = not rest or rest[0].isspace() or rest[0] in _DATE_SEP
    elif tail.end() == len(line):
        rest = line[: tail.start()]
        joined = rest[-1].isspace() or rest[-1] in _DATE_SEP
    else:
        return False
    rest = rest.strip(_DATE_SEP + "\xa0\u3000")
    return joined and len(rest) <= 24 and not _PUNCT.search(rest)


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
