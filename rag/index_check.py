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

from rag.errors import IndexDamagedError

if TYPE_CHECKING:
    from rag.index import SearchIndex

T = TypeVar("T")


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


def _is_span(start: object, end: object, length: int) -> bool:
    return type(start) is int and type(end) is int and 0 <= start < end <= length


def check_index(index: SearchIndex, all_vectors: np.ndarray) -> None:
    """Raise :class:`IndexDamagedError` unless the parts of ``index`` fit together."""
    build, manifest = index.path, index.manifest
    texts = {doc_id: doc.text for doc_id, doc in index.documents.items()}
    if set(texts) != {d.id for d in manifest.documents}:
        raise damaged(build / "documents.jsonl", "its articles differ from the manifest's")
    for doc_id, doc in index.documents.items():
        for field in doc.meta:
            if not (
                _is_span(field.start, field.end, len(doc.text))
                and doc.text[field.start : field.end] == field.value
            ):
                raise damaged(build / "documents.jsonl", f"metadata of {doc_id} is off its text")
        pages = list(doc.pages)
        if pages != sorted(pages) or not all(0 <= page <= len(doc.text) for page in pages):
            raise damaged(build / "documents.jsonl", f"page offsets of {doc_id} are off its text")
    if manifest.chunk_count != len(index.chunks):
        raise damaged(
            build / "chunks.jsonl",
            f"{len(index.chunks)} chunks where the manifest counts {manifest.chunk_count}",
        )
    for row, chunk in enumerate(index.chunks):
        text = texts.get(chunk.doc)
        if text is None or not _is_span(chunk.start, chunk.end, len(text)):
            raise damaged(build / "chunks.jsonl", f"chunk {row} points outside its article")
        if text[chunk.start : chunk.end] != chunk.text:
            raise damaged(
                build / "chunks.jsonl",
                f"chunk {row} differs from {chunk.doc} at {chunk.start}-{chunk.end} "
                "in documents.jsonl",
            )
    for row, sentence in enumerate(index.sentences):
        text = texts.get(sentence.doc)
        if text is None or not _is_span(sentence.start, sentence.end, len(text)):
            raise damaged(build / "sentences.jsonl", f"sentence {row} points outside its article")
    _check_chunk_sentences(index)
    dim = manifest.dim
    if index.vectors.size != len(index.chunks) or index.vectors.dim != dim:
        raise damaged(
            build / "vectors.faiss",
            f"{index.vectors.size} vectors of {index.vectors.dim}d for "
            f"{len(index.chunks)} chunks of {dim}d",
        )
    rows = len(index.chunks) + len(index.sentences)
    if all_vectors.shape != (rows, dim) or all_vectors.dtype != np.float32:
        raise damaged(
            build / "embeddings.npy",
            f"shape {all_vectors.shape} {all_vectors.dtype}, expected ({rows}, {dim}) float32",
        )


def _check_chunk_sentences(index: SearchIndex) -> None:
    path = index.path / "chunk_sentences.json"
    table = index.chunk_sentences
    if not isinstance(table, list) or len(table) != len(index.chunks):
        raise damaged(path, "not one list of sentence rows per chunk")
    count = len(index.sentences)
    for row, (chunk, members) in enumerate(zip(index.chunks, table, strict=True)):
        if not isinstance(members, list) or not members:
            raise damaged(path, f"chunk {row} has no sentence rows")
        for member in members:
            if type(member) is not int or not 0 <= member < count:
                raise damaged(path, f"chunk {row} lists sentence {member!r} of {count}")
            sentence = index.sentences[member]
            if sentence.doc != chunk.doc or not (
                chunk.start <= sentence.start and sentence.end <= chunk.end
            ):
                raise damaged(path, f"chunk {row} lists sentence {member}, which is not in it")
