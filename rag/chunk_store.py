"""Compact, memory-mapped tables of chunks and sentences: offsets in numpy arrays, no text.

A chunk or sentence is a slice of its article's text, so storing ``(doc, start, end)`` rows is
enough; the text is cut from the article when a row is read. At a million chunks, Python
objects with their own copies of the text cost ~10 kB per chunk; these tables cost ~40 bytes
per chunk and are paged in from disk only where read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.chunking import Chunk

CHUNKS_FILE = "chunks.npy"  # int32 rows: doc number, ord, start, end
SENTENCES_FILE = "sentences.npy"  # int32 rows: doc number, start, end
MEMBERS_FILE = "chunk_sentences.npy"  # int32 sentence rows of all chunks, chunk after chunk
MEMBER_PTR_FILE = "chunk_sentence_ptr.npy"  # int64: chunk i owns members[ptr[i]:ptr[i + 1]]
TABLE_FILES = (CHUNKS_FILE, SENTENCES_FILE, MEMBERS_FILE, MEMBER_PTR_FILE)


@dataclass(frozen=True)
class Sentence:
    """One sentence of a chunk: answers quote whole sentences."""

    doc: str
    start: int
    end: int


class _Article(Protocol):
    @property
    def title(self) -> str: ...

    @property
    def text(self) -> str: ...


class ChunkTable:
    """Chunks by row, read from the offset table; ``len``, indexing and iteration."""

    def __init__(
        self, rows: np.ndarray, doc_ids: Sequence[str], documents: Mapping[str, _Article]
    ) -> None:
        self.rows = rows  # int32 (doc number, ord, start, end) per chunk
        self._doc_ids = doc_ids
        self._documents = documents

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, row: int) -> Chunk:
        doc_no, ord_, start, end = (int(x) for x in self.rows[row])
        doc = self._doc_ids[doc_no]
        article = self._documents[doc]
        return Chunk(doc, ord_, start, end, article.text[start:end], article.title)

    def __iter__(self) -> Iterator[Chunk]:
        return (self[row] for row in range(len(self)))

    def __eq__(self, other: object) -> bool:
        """Same chunks in the same order (two builds of one corpus compare equal)."""
        return isinstance(other, ChunkTable) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def spans(self, rows: Sequence[int]) -> list[tuple[str, int, int]]:
        """``(doc, start, end)`` of several rows without building chunks."""
        table = self.rows[np.asarray(rows, dtype=np.int64)]
        return [(self._doc_ids[int(d)], int(s), int(e)) for d, _, s, e in table]


class SentenceTable:
    """Sentences by row, read from the offset table."""

    def __init__(self, rows: np.ndarray, doc_ids: Sequence[str]) -> None:
        self.rows = rows  # int32 (doc number, start, end) per sentence
        self._doc_ids = doc_ids

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, row: int) -> Sentence:
        doc_no, start, end = (int(x) for x in self.rows[row])
        return Sentence(self._doc_ids[doc_no], start, end)

    def __iter__(self) -> Iterator[Sentence]:
        return (self[row] for row in range(len(self)))


class ChunkSentences:
    """Per chunk row, its sentence rows in order (a CSR pair of arrays)."""

    def __init__(self, members: np.ndarray, ptr: np.ndarray) -> None:
        self.members = members
        self.ptr = ptr

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def __getitem__(self, row: int) -> list[int]:
        return [int(r) for r in self.members[self.ptr[row] : self.ptr[row + 1]]]

    def __iter__(self) -> Iterator[list[int]]:
        return (self[row] for row in range(len(self)))


def sentence_rows(
    chunks: Sequence[Chunk], spans: Sequence[Sequence[tuple[int, int]]]
) -> tuple[list[Sentence], list[list[int]]]:
    """Unique sentences of all chunks (given each chunk's sentence spans) and, per chunk, the
    rows of its sentences."""
    rows: dict[Sentence, int] = {}
    per_chunk: list[list[int]] = []
    for chunk, mine in zip(chunks, spans, strict=True):
        per_chunk.append([rows.setdefault(Sentence(chunk.doc, s, e), len(rows)) for s, e in mine])
    return list(rows), per_chunk


def write_tables(
    directory: Path,
    doc_ids: Sequence[str],
    chunks: Sequence[Chunk],
    sentences: Sequence[Sentence],
    chunk_sentences: Sequence[Sequence[int]],
) -> None:
    """Write the four offset tables of a build (documents are numbered in ``doc_ids`` order)."""
    number = {doc: n for n, doc in enumerate(doc_ids)}
    chunk_rows = np.array(
        [(number[c.doc], c.ord, c.start, c.end) for c in chunks], dtype=np.int32
    ).reshape(-1, 4)
    sentence_table = np.array(
        [(number[s.doc], s.start, s.end) for s in sentences], dtype=np.int32
    ).reshape(-1, 3)
    ptr = np.zeros(len(chunk_sentences) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(m) for m in chunk_sentences])
    members = np.fromiter(
        (r for m in chunk_sentences for r in m), dtype=np.int32, count=int(ptr[-1])
    )
    np.save(directory / CHUNKS_FILE, chunk_rows)
    np.save(directory / SENTENCES_FILE, sentence_table)
    np.save(directory / MEMBERS_FILE, members)
    np.save(directory / MEMBER_PTR_FILE, ptr)


def read_tables(
    directory: Path, doc_ids: Sequence[str], documents: Mapping[str, _Article]
) -> tuple[ChunkTable, SentenceTable, ChunkSentences]:
    """Open the tables memory-mapped: loading costs no time and no RAM until rows are read."""

    def load(name: str) -> np.ndarray:
        return np.load(directory / name, mmap_mode="r")

    return (
        ChunkTable(load(CHUNKS_FILE), doc_ids, documents),
        SentenceTable(load(SENTENCES_FILE), doc_ids),
        ChunkSentences(load(MEMBERS_FILE), load(MEMBER_PTR_FILE)),
    )
