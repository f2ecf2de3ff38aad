"""The indexed articles on disk: one memory-mapped text blob, parsed per article when read.

Parsing every article into Python objects at load cost most of ``load_index`` at scale (~4 s
and ~0.4 kB of RAM per chunk at a million chunks), so a build stores the texts end to end in
``documents.txt`` (UTF-8), each article's other fields as one JSON line of
``document_info.jsonl``, and an int64 table with where each one lies. Loading reads only the
ids; an article is decoded, checked and cached when someone reads it. ``DocumentStore`` is a
``Mapping[str, StoredDocument]``, so callers still use ``index.documents`` as a dict.
"""

from __future__ import annotations

import bisect
import json
import mmap
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, overload

import numpy as np

from rag.index_check import IDS_FILE, damaged  # IDS_FILE: the ids in table order
from rag.manifest import DocumentInfo
from rag.metadata import MetaField

TEXT_FILE = "documents.txt"  # every article's text, UTF-8, end to end
INFO_FILE = "document_info.jsonl"  # one JSON object per article: everything but the text
TABLE_FILE = "documents.npy"  # int64 rows, see the column numbers below
DOCUMENT_FILES = (TEXT_FILE, INFO_FILE, TABLE_FILE, IDS_FILE)
TEXT_START, TEXT_END, TEXT_CHARS, INFO_START, INFO_END, CHUNKS = range(6)
CACHED = 1024  # articles kept decoded (retrieval reads the same few again and again)
INFO_WINDOW = 8 << 20  # bytes of the info file lower-cased at a time to search it


@dataclass(frozen=True)
class StoredDocument:
    """An article as indexed: its original text is what citation offsets point into, those of
    its metadata fields included."""

    id: str
    title: str
    date: str | None
    text: str
    meta: tuple[MetaField, ...] = ()
    format: str = "text"  # which reader made ``text`` (rag.readers)
    encoding: str | None = None
    pages: tuple[int, ...] = ()  # offset where each page starts (PDF)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], text: str | None = None) -> StoredDocument:
        """A stored row (``text`` given apart or in the row); rows without metadata have none."""
        meta = tuple(MetaField(**field) for field in row.get("meta", ()))
        return cls(
            row["id"],
            row["title"],
            row["date"],
            row["text"] if text is None else text,
            meta,
            row.get("format", "text"),
            row.get("encoding"),
            tuple(row.get("pages", ())),
        )

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``offset``; None without pages or above the first."""
        page = bisect.bisect_right(self.pages, offset)
        return page or None


class _Source(Protocol):
    """What a build stores of an article (rag.corpus.Document)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def date(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def meta(self) -> tuple[MetaField, ...]: ...
    @property
    def format(self) -> str: ...
    @property
    def encoding(self) -> str | None: ...
    @property
    def pages(self) -> tuple[int, ...]: ...
    @property
    def sha256(self) -> str: ...


def _first(meta: Sequence[MetaField], name: str) -> str | None:
    return next((field.value for field in meta if field.name == name), None)


def document_info(doc: _Source, chunks: int) -> DocumentInfo:
    """What the manifest says of an article."""
    return DocumentInfo(
        id=doc.id,
        title=doc.title,
        date=doc.date,
        author=_first(doc.meta, "author"),
        source=_first(doc.meta, "source"),
        sha256=doc.sha256,
        chunks=chunks,
        format=doc.format,
        encoding=doc.encoding,
    )


def write_documents(
    directory: Path, documents: Sequence[_Source], chunks: Mapping[str, int]
) -> None:
    """The four document files of a build, streamed (one article in memory at a time)."""
    table = np.zeros((len(documents), 6), dtype=np.int64)
    text_at = info_at = 0
    with (
        (directory / TEXT_FILE).open("wb") as texts,
        (directory / INFO_FILE).open("wb") as infos,
    ):
        for n, doc in enumerate(documents):
            body = doc.text.encode("utf-8")
            row = {
                "id": doc.id,
                "title": doc.title,
                "date": doc.date,
                "meta": [asdict(field) for field in doc.meta],
                "format": doc.format,
                "encoding": doc.encoding,
                "pages": list(doc.pages),
                "sha256": doc.sha256,
                "chunks": chunks.get(doc.id, 0),
            }
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            texts.write(body)
            infos.write(line)
            table[n] = (
                text_at,
                text_at + len(body),
                len(doc.text),
                info_at,
                info_at + len(line),
                chunks.get(doc.id, 0),
            )
            text_at += len(body)
            info_at += len(line)
    np.save(directory / TABLE_FILE, table)
    (directory / IDS_FILE).write_text(
        json.dumps([d.id for d in documents], ensure_ascii=False), encoding="utf-8"
    )


def _map(path: Path) -> mmap.mmap | bytes:
    """The file's bytes, memory-mapped (an empty file cannot be mapped)."""
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


class DocumentStore(Mapping[str, StoredDocument]):
    """Articles by id, decoded from the mapped blob on first read and checked then."""

    def __init__(self, build: Path) -> None:
        self.build = build
        self.ids: list[str] = json.loads((build / IDS_FILE).read_text(encoding="utf-8"))
        if not isinstance(self.ids, list) or not all(isinstance(i, str) for i in self.ids):
            raise ValueError("not a JSON list of ids")
        self.number = {doc_id: n for n, doc_id in enumerate(self.ids)}
        self.table: np.ndarray = np.load(build / TABLE_FILE, mmap_mode="r")
        self._text = _map(build / TEXT_FILE)
        self._info = _map(build / INFO_FILE)
        self._cache: OrderedDict[int, StoredDocument] = OrderedDict()
        self._lock = threading.Lock()
        self._newest: np.ndarray | None = None  # see ``newest_first``
        self._order_lock = threading.Lock()

    # --- Mapping
    def __getitem__(self, doc_id: str) -> StoredDocument:
        return self.document(self.number[doc_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.number

    # --- by number
    @property
    def lengths(self) -> np.ndarray:
        """Each article's length in characters, what chunk offsets must stay within."""
        return np.asarray(self.table[:, TEXT_CHARS], dtype=np.int64)

    def info_row(self, n: int) -> dict[str, Any]:
        start, end = (int(x) for x in self.table[n, INFO_START : INFO_END + 1])
        try:
            row = json.loads(bytes(self._info[start:end]))
        except ValueError:
            raise damaged(self.build / INFO_FILE, f"line of article {n} is not JSON") from None
        if not isinstance(row, dict) or row.get("id") != self.ids[n]:
            raise damaged(self.build / INFO_FILE, f"line of article {n} is not {self.ids[n]!r}")
        return row

    def document(self, n: int) -> StoredDocument:
        """Article ``n``, decoded and checked against its offsets once, then cached."""
        with self._lock:
            doc = self._cache.get(n)
            if doc is not None:
                self._cache.move_to_end(n)
                return doc
        doc = self._read(n)
        with self._lock:
            self._cache[n] = doc
            if len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return doc

    def _read(self, n: int) -> StoredDocument:
        start, end, chars = (int(x) for x in self.table[n, TEXT_START : TEXT_CHARS + 1])
        try:
            text = bytes(self._text[start:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise damaged(self.build / TEXT_FILE, f"{self.ids[n]} is not UTF-8") from None
        if len(text) != chars:
            raise damaged(self.build / TEXT_FILE, f"{self.ids[n]} is not {chars} characters")
        row = self.info_row(n)
        try:
            doc = StoredDocument.from_row(row, text)
        except (KeyError, TypeError):
            raise damaged(self.build / INFO_FILE, f"fields of {self.ids[n]} are missing") from None
        _check_offsets(self.build / INFO_FILE, doc)
        return doc

    def newest_first(self) -> np.ndarray:
        """Article numbers newest first, undated last, then by title (as the page lists them):
        sorted once per build from the info lines, no article text read."""
        with self._order_lock:
            if self._newest is None:
                keys = []
                for n in range(len(self.ids)):
                    row = self.info_row(n)
                    keys.append((row.get("date") or "", str(row.get("title") or ""), n))
                keys.sort(key=lambda k: k[1])
                keys.sort(key=lambda k: k[0], reverse=True)
                self._newest = np.asarray([n for _, _, n in keys], dtype=np.int64)
            return self._newest

    def fields_mention(self, lowered: str) -> bool:
        """Whether an article's title or a metadata field (author, source ...) holds ``lowered``
        (lower-cased), case aside: a search of the mapped info file's bytes, each hit checked
        in its parsed line, with no article text read."""
        if not lowered:
            return True
        ends = self.table[:, INFO_END]
        line_end = 0
        for at in self._info_hits(lowered):
            if at < line_end:
                continue  # this line was checked already
            n = int(np.searchsorted(ends, at, side="right"))
            row = self.info_row(n)
            fields = [row.get("title") or "", *(f.get("value") or "" for f in row.get("meta", ()))]
            if any(lowered in str(f).lower() for f in fields):
                return True
            line_end = int(ends[n])
        return False

    def _info_hits(self, lowered: str) -> Iterator[int]:
        """Where ``lowered`` (as JSON writes it) may start in the info file, case aside, in
        order. ASCII case folds byte by byte, so ASCII text is lower-cased and searched a window
        at a time (a regex of case variants runs ~10x slower); other text goes through one."""
        needle = json.dumps(lowered, ensure_ascii=False)[1:-1].encode()
        if not lowered.isascii():
            pattern = re.compile(b"".join(_byte_variants(c) for c in lowered))
            yield from (m.start() for m in pattern.finditer(self._info))
            return
        for start in range(0, len(self._info), INFO_WINDOW):
            window = bytes(self._info[start : start + INFO_WINDOW + len(needle) - 1]).lower()
            found = window.find(needle)
            while 0 <= found < INFO_WINDOW:  # later ones: the next window's
                yield start + found
                found = window.find(needle, found + 1)

    def infos(self) -> DocumentInfos:
        return DocumentInfos(self)

    def check(self, chunk_count: int, chunk_docs: np.ndarray) -> None:
        """The table against the files and the chunks, in numpy (a million chunks: ~0.1 s).
        Each article's own fields are checked when it is first read (``full``: all now)."""
        table = np.asarray(self.table)
        if table.ndim != 2 or table.shape != (len(self.ids), 6) or table.dtype != np.int64:
            raise damaged(self.build / TABLE_FILE, f"shape {table.shape}, {len(self.ids)} ids")
        if len(self.number) != len(self.ids):
            raise damaged(self.build / IDS_FILE, "an id is listed twice")
        for file, first, last in (
            (TEXT_FILE, TEXT_START, TEXT_END),
            (INFO_FILE, INFO_START, INFO_END),
        ):
            starts, ends = table[:, first], table[:, last]
            size = len(self._text if file == TEXT_FILE else self._info)
            joined = len(table) == 0 or (
                starts[0] == 0 and np.array_equal(starts[1:], ends[:-1]) and bool(ends[-1] == size)
            )
            if not joined or bool(np.any(ends < starts)):
                raise damaged(self.build / file, f"{size} bytes do not match {TABLE_FILE}")
        nbytes = table[:, TEXT_END] - table[:, TEXT_START]
        chars = table[:, TEXT_CHARS]
        if bool(np.any((chars > nbytes) | (nbytes > 4 * chars))):
            raise damaged(self.build / TABLE_FILE, "a text length is not its UTF-8 length")
        counts = np.bincount(chunk_docs, minlength=len(table)) if len(chunk_docs) else None
        expected = table[:, CHUNKS]
        if int(expected.sum()) != chunk_count or (
            counts is not None and not np.array_equal(counts[: len(table)], expected)
        ):
            raise damaged(self.build / TABLE_FILE, "chunks per article differ from chunks.npy")

    def check_all(self) -> None:
        """Read every article (what ``load_index(verify=True)`` adds to the table checks)."""
        for n in range(len(self.ids)):
            self._read(n)


def _byte_variants(char: str) -> bytes:
    """A regex of the UTF-8 bytes (JSON-escaped) of the characters that lower-case to ``char``."""
    variants = {v for v in (char.upper(), char.title()) if len(v) == 1 and v.lower() == char}
    forms = sorted({json.dumps(v, ensure_ascii=False)[1:-1].encode() for v in {char, *variants}})
    escaped = [re.escape(f) for f in forms]
    return escaped[0] if len(escaped) == 1 else b"(?:" + b"|".join(escaped) + b")"


def _check_offsets(path: Path, doc: StoredDocument) -> None:
    for field in doc.meta:
        if not (
            type(field.start) is int
            and type(field.end) is int
            and 0 <= field.start < field.end <= len(doc.text)
            and doc.text[field.start : field.end] == field.value
        ):
            raise damaged(path, f"metadata of {doc.id} is off its text")
    pages = list(doc.pages)
    if pages != sorted(pages) or not all(0 <= page <= len(doc.text) for page in pages):
        raise damaged(path, f"page offsets of {doc.id} are off its text")


class DocumentInfos(Sequence[DocumentInfo]):
    """The manifest's per-article list, read from the store when asked for (not at load)."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return len(self._store)

    @overload
    def __getitem__(self, n: int) -> DocumentInfo: ...
    @overload
    def __getitem__(self, n: slice) -> list[DocumentInfo]: ...
    def __getitem__(self, n: int | slice) -> DocumentInfo | list[DocumentInfo]:
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(len(self)))]
        if n < 0:
            n += len(self)
        if not 0 <= n < len(self):
            raise IndexError(n)
        row = self._store.info_row(n)
        meta = [MetaField(**f) for f in row.get("meta", ())]
        return DocumentInfo(
            id=row["id"],
            title=row["title"],
            date=row["date"],
            author=_first(meta, "author"),
            source=_first(meta, "source"),
            sha256=row["sha256"],
            chunks=row["chunks"],
            format=row.get("format", "text"),
            encoding=row.get("encoding"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
