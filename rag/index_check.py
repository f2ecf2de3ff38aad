"""Is a loaded build whole? Each file parses and the files agree with each other.

Checksums catch damage to builds that have them; these checks also catch builds without
them and files that were written wrong. Either way the result is one :class:`IndexDamagedError`
naming the file, at load time, rather than a traceback at start-up, a 500 on every request
or quotes cut from shifted text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rag.chunk_store import CHUNKS_FILE, MEMBERS_FILE, SENTENCES_FILE
from rag.errors import IndexDamagedError

if TYPE_CHECKING:
    from rag.document_store import DocumentStore
    from rag.index import SearchIndex

T = TypeVar("T")
IDS_FILE = "document_ids.json"  # the article ids (rag/document_store.py imports this module)


def damaged(path: Path, why: str) -> IndexDamagedError:
    return IndexDamagedError(f"damaged index file {path}: {why}; rebuild it with 'rag index'")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (FAISS and pydantic write several), shortened."""
    errors = getattr(exc, "errors", None)  # pydantic: the first problem says the most
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where + ': ' if where else ''}{first['msg']}"[:160]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_part(build: Path, name: str, read: Callable[[Path], T]) -> T:
    """``read(build / name)``; whatever goes wrong parsing it becomes a damaged-file error."""
    try:
        return read(build / name)
    except Exception as exc:  # every parser fails its own way; all of them mean the same here
        raise damaged(build / name, one_line(exc)) from None


def check_index(
    index: SearchIndex, documents: DocumentStore, chunk_vectors: np.ndarray, *, full: bool = False
) -> None:
    """Raise :class:`IndexDamagedError` unless the parts of ``index`` fit together.

    The article, chunk and sentence tables are checked with numpy, a block of rows at a time (a
    million chunks in well under a second); chunk and sentence text is cut from the articles,
    so it cannot differ from them. Each article's own offsets (metadata, pages) are checked
    when it is first read, or here for all of them when ``full``.
    """
    build, manifest = index.path, index.manifest
    if manifest.document_count != len(documents):
        raise damaged(
            build / IDS_FILE,
            f"{len(documents)} articles where the manifest counts {manifest.document_count}",
        )
    chunks = np.asarray(index.chunks.rows)
    if manifest.chunk_count != len(chunks):
        raise damaged(
            build / CHUNKS_FILE,
            f"{len(chunks)} chunks where the manifest counts {manifest.chunk_count}",
        )
    lengths = documents.lengths
    bad = _outside(chunks, (0, 2, 3), lengths)
    if bad is not None:
        raise damaged(build / CHUNKS_FILE, f"chunk {bad} points outside its article")
    documents.check(manifest.chunk_count, np.asarray(chunks[:, 0], dtype=np.int64))
    if full:
        documents.check_all()
    sentences = np.asarray(index.sentences.rows)
    bad = _outside(sentences, (0, 1, 2), lengths)
    if bad is not None:
        raise damaged(build / SENTENCES_FILE, f"sentence {bad} points outside its article")
    _check_chunk_sentences(index, chunks, sentences)
    dim = manifest.dim
    if index.vectors.size != len(chunks) or index.vectors.dim != dim:
        raise damaged(
            build / "vectors.faiss",
            f"{index.vectors.size} vectors of {index.vectors.dim}d for "
            f"{len(chunks)} chunks of {dim}d",
        )
    if chunk_vectors.shape != (len(chunks), dim) or chunk_vectors.dtype != np.float32:
        raise damaged(
            build / "embeddings.npy",
            f"shape {chunk_vectors.shape} {chunk_vectors.dtype}, "
            f"expected ({len(chunks)}, {dim}) float32",
        )


# Rows checked per step. Whole-table temporaries would be freed into the heap, where glibc's
# adaptive mmap threshold keeps them: 0.26 kB of RAM per chunk for as long as the index
# serves; blocks keep that, and the peak, to a few MB.
BLOCK = 1 << 16


def _outside(rows: np.ndarray, columns: tuple[int, int, int], lengths: np.ndarray) -> int | None:
    """The first row whose document number or span (``columns``: doc, start, end) is
    impossible, or None."""
    d, s, e = columns
    for first in range(0, len(rows), BLOCK):
        block = np.asarray(rows[first : first + BLOCK], dtype=np.int64)
        docs, starts, ends = block[:, d], block[:, s], block[:, e]
        known = (docs >= 0) & (docs < len(lengths))
        limit = np.where(known, lengths[np.where(known, docs, 0)], -1)
        bad = np.flatnonzero(~known | (starts < 0) | (starts >= ends) | (ends > limit))
        if len(bad):
            return first + int(bad[0])
    return None


def _check_chunk_sentences(index: SearchIndex, chunks: np.ndarray, sentences: np.ndarray) -> None:
    path = index.path / MEMBERS_FILE
    members = np.asarray(index.chunk_sentences.members)
    ptr = np.asarray(index.chunk_sentences.ptr)
    if len(ptr) != len(chunks) + 1 or ptr[0] != 0 or ptr[-1] != len(members):
        raise damaged(path, "not one list of sentence rows per chunk")
    count = len(sentences)
    for first in range(0, len(chunks), BLOCK):
        last = min(first + BLOCK, len(chunks))
        bounds = np.asarray(ptr[first : last + 1], dtype=np.int64)
        sizes = np.diff(bounds)
        empty = np.flatnonzero(sizes <= 0)
        if len(empty):
            raise damaged(path, f"chunk {first + int(empty[0])} has no sentence rows")
        mine_rows = np.asarray(members[bounds[0] : bounds[-1]], dtype=np.int64)
        owner = np.repeat(np.arange(first, last), sizes)
        bad = np.flatnonzero((mine_rows < 0) | (mine_rows >= count))
        if len(bad):
            row, member = int(owner[bad[0]]), int(mine_rows[bad[0]])
            raise damaged(path, f"chunk {row} lists sentence {member} of {count}")
        mine = np.asarray(sentences[mine_rows], dtype=np.int64)
        theirs = np.asarray(chunks[first:last], dtype=np.int64)[owner - first]
        bad = np.flatnonzero(
            (mine[:, 0] != theirs[:, 0]) | (mine[:, 1] < theirs[:, 2]) | (mine[:, 2] > theirs[:, 3])
        )
        if len(bad):
            row, member = int(owner[bad[0]]), int(mine_rows[bad[0]])
            raise damaged(path, f"chunk {row} lists sentence {member}, which is not in it")
