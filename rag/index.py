"""Build, save and open the on-disk index (chunks + vectors + BM25 + manifest).

A build is written into its own directory and published by atomically replacing the
``current`` symlink, so a killed build never damages the index being served. Vectors of
unchanged chunks are reused from the previous build, keyed by the exact text embedded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rag.chunking import Chunk, chunk_corpus
from rag.corpus import Corpus, Document, load_corpus
from rag.embedding import Embedder
from rag.errors import IndexMismatchError, IndexMissingError
from rag.lexical import LexicalIndex
from rag.manifest import DocumentInfo, Manifest, SkippedInfo
from rag.metadata import MetaField
from rag.sentences import split_sentences
from rag.vectors import VectorIndex, choose_kind

log = logging.getLogger(__name__)

CURRENT = "current"
BUILDS = "builds"
EMBED_BATCH = 32


@dataclass(frozen=True)
class StoredDocument:
    """An article as indexed: its original text is what citation offsets point into, those of
    its metadata fields included."""

    id: str
    title: str
    date: str | None
    text: str
    meta: tuple[MetaField, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredDocument:
        """A ``documents.jsonl`` row; builds made before metadata was stored have none."""
        meta = tuple(MetaField(**field) for field in row.get("meta", ()))
        return cls(row["id"], row["title"], row["date"], row["text"], meta)


@dataclass(frozen=True)
class Sentence:
    """One sentence of a chunk; answers quote whole sentences, so they are embedded too."""

    doc: str
    start: int
    end: int


@dataclass
class SearchIndex:
    """Everything retrieval and answering need, loaded in memory from one complete build."""

    path: Path
    manifest: Manifest
    chunks: list[Chunk]
    documents: dict[str, StoredDocument]
    vectors: VectorIndex
    lexical: LexicalIndex
    sentences: list[Sentence]
    chunk_sentences: list[list[int]]  # per chunk row: its sentence rows, in order
    sentence_vectors: np.ndarray

    @cached_property
    def lowered_text(self) -> str:
        """All articles, lower-cased, once: "is this word anywhere in the corpus?" checks."""
        return "\n".join(d.text.lower() for d in self.documents.values())

    def sentence_text(self, row: int) -> str:
        s = self.sentences[row]
        return self.documents[s.doc].text[s.start : s.end]


@dataclass(frozen=True)
class IndexConfig:
    """The build parameters that must match between an index and the running service."""

    corpus_dir: Path
    index_dir: Path
    chunk_chars: int = 200
    chunk_overlap: int = 1
    ann: str = "auto"
    ann_threshold: int = 50_000


def passage_text(chunk: Chunk) -> str:
    """What gets embedded for a chunk: the article title gives short chunks their context."""
    return f"{chunk.title}\n{chunk.text}"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_path(index_dir: Path) -> Path:
    return index_dir / CURRENT


def _reusable_vectors(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """Vectors of the live build keyed by embedded text, if it used the same embedder."""
    live = current_path(index_dir)
    try:
        manifest = Manifest.read(live / "manifest.json")
        if manifest.embedder != embedder.id or manifest.dim != embedder.dim:
            return {}
        keys = (live / "keys.txt").read_text(encoding="utf-8").split()
        vectors = np.load(live / "embeddings.npy")
    except (OSError, ValueError):
        return {}
    if len(keys) != len(vectors):
        return {}
    return dict(zip(keys, vectors, strict=True))


def _batches(items: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sentence_table(
    chunks: Sequence[Chunk], texts: dict[str, str]
) -> tuple[list[Sentence], list[list[int]]]:
    """Unique sentences of all chunks and, per chunk, the rows of its sentences."""
    rows: dict[Sentence, int] = {}
    per_chunk: list[list[int]] = []
    for chunk in chunks:
        mine = []
        for start, end in split_sentences(texts[chunk.doc], chunk.start, chunk.end):
            mine.append(rows.setdefault(Sentence(chunk.doc, start, end), len(rows)))
        per_chunk.append(mine)
    return list(rows), per_chunk


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    reuse: dict[str, np.ndarray],
    progress: bool,
    batch_size: int = EMBED_BATCH,
) -> tuple[np.ndarray, list[str], int]:
    """Passage vectors for ``texts``, embedding only those missing from ``reuse``.

    Returns the matrix, the per-row text keys and how many texts were newly embedded.
    """
    keys = [_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in reuse}.items())
    fresh: dict[str, np.ndarray] = {}
    with tqdm(total=len(todo), desc="embedding", unit="text", disable=not progress) as bar:
        for batch in _batches(todo, batch_size):
            vectors = embedder.embed_passages([t for _, t in batch])
            fresh.update((k, v) for (k, _), v in zip(batch, vectors, strict=True))
            bar.update(len(batch))
    table = {**reuse, **fresh}
    matrix = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        matrix[row] = table[key]
    return matrix, keys, len(todo)


def _clean_stale_builds(index_dir: Path, keep: set[str]) -> None:
    """Remove finished builds other than ``keep`` and temp dirs of builds that died."""
    builds = index_dir / BUILDS
    for child in builds.iterdir() if builds.is_dir() else []:
        if child.name in keep:
            continue
        if child.name.startswith(".tmp-"):
            pid = child.name.split("-")[1]
            if pid.isdigit() and _alive(int(pid)):
                continue
        shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish(index_dir: Path, build_name: str) -> None:
    """Point ``current`` at the new build with one atomic rename of a symlink."""
    link = current_path(index_dir)
    if link.exists() and not link.is_symlink():
        raise IndexMismatchError(f"{link} is not an index symlink; move it away and rebuild")
    tmp_link = index_dir / f".current-{uuid.uuid4().hex}"
    tmp_link.symlink_to(Path(BUILDS) / build_name)
    os.replace(tmp_link, link)


def build_index(
    config: IndexConfig,
    embedder: Embedder,
    *,
    progress: bool = False,
    corpus: Corpus | None = None,
    embed_batch: int = EMBED_BATCH,
) -> Manifest:
    """Chunk, embed and index the corpus, then atomically publish the result.

    ``embed_batch`` is how many texts go to one ``embed_passages`` call; an embedder that
    spreads a call over many workers wants it large."""
    started = time.perf_counter()
    corpus = corpus or load_corpus(config.corpus_dir)
    for skipped in corpus.skipped:
        log.warning("skipped file", extra={"path": str(skipped.path), "reason": skipped.reason})
    chunks = chunk_corpus(corpus, max_chars=config.chunk_chars, overlap=config.chunk_overlap)
    index_dir = config.index_dir
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    reuse = _reusable_vectors(index_dir, embedder)
    doc_texts = {d.id: d.text for d in corpus.documents}
    sentences, chunk_sentences = sentence_table(chunks, doc_texts)
    texts = [passage_text(c) for c in chunks] + [
        doc_texts[s.doc][s.start : s.end] for s in sentences
    ]
    all_vectors, keys, embedded = embed_texts(texts, embedder, reuse, progress, embed_batch)
    vectors = all_vectors[: len(chunks)]

    name = time.strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:8]}"
    tmp = builds / f".tmp-{os.getpid()}-{name}"
    tmp.mkdir()
    kind = choose_kind(config.ann, len(chunks), config.ann_threshold)
    VectorIndex.build(vectors, kind).save(tmp / "vectors.faiss")
    np.save(tmp / "embeddings.npy", all_vectors)
    (tmp / "keys.txt").write_text("\n".join(keys), encoding="utf-8")
    LexicalIndex.build([c.text for c in chunks]).save(tmp / "bm25")
    _write_jsonl(tmp / "chunks.jsonl", (asdict(c) for c in chunks))
    _write_jsonl(tmp / "sentences.jsonl", (asdict(s) for s in sentences))
    (tmp / "chunk_sentences.json").write_text(json.dumps(chunk_sentences), encoding="utf-8")
    _write_jsonl(tmp / "documents.jsonl", (_document_row(d) for d in corpus.documents))
    per_doc: dict[str, int] = {}
    for chunk in chunks:
        per_doc[chunk.doc] = per_doc.get(chunk.doc, 0) + 1
    manifest = Manifest(
        embedder=embedder.id,
        dim=embedder.dim,
        chunk_chars=config.chunk_chars,
        chunk_overlap=config.chunk_overlap,
        vector_index=kind,
        corpus_dir=str(config.corpus_dir.resolve()),
        corpus_fingerprint=corpus.fingerprint(),
        documents=[
            DocumentInfo(
                id=d.id,
                title=d.title,
                date=d.date,
                author=_first(d.meta, "author"),
                source=_first(d.meta, "source"),
                sha256=d.sha256,
                chunks=per_doc.get(d.id, 0),
            )
            for d in corpus.documents
        ],
        skipped=[SkippedInfo(path=str(s.path), reason=s.reason) for s in corpus.skipped],
        chunk_count=len(chunks),
        embedded=embedded,
        reused=len(texts) - embedded,
        build_seconds=round(time.perf_counter() - started, 3),
    )
    manifest.write(tmp / "manifest.json")  # last file written: marks the build complete
    final = builds / name
    os.replace(tmp, final)
    previous = current_path(index_dir).resolve().name if current_path(index_dir).exists() else ""
    _publish(index_dir, name)
    _clean_stale_builds(index_dir, keep={name, previous})
    log.info(
        "index built",
        extra={
            "path": str(final),
            "chunks": len(chunks),
            "embedded": embedded,
            "seconds": manifest.build_seconds,
        },
    )
    return manifest


def _document_row(doc: Document) -> dict[str, object]:
    return {
        "id": doc.id,
        "title": doc.title,
        "date": doc.date,
        "text": doc.text,
        "meta": [asdict(field) for field in doc.meta],
    }


def _first(meta: Sequence[MetaField], name: str) -> str | None:
    return next((field.value for field in meta if field.name == name), None)


def _write_jsonl(path: Path, rows: Iterator[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_index(index_dir: Path) -> SearchIndex:
    """Load the live build; the symlink is resolved once so a concurrent swap cannot mix builds."""
    link = current_path(index_dir)
    if not (link / "manifest.json").is_file():
        raise IndexMissingError(f"no index in {index_dir}: run 'rag index' first")
    path = link.resolve()
    manifest = Manifest.read(path / "manifest.json")
    chunks = [Chunk(**row) for row in _read_jsonl(path / "chunks.jsonl")]  # type: ignore[arg-type]
    documents = {
        str(row["id"]): StoredDocument.from_row(row)
        for row in _read_jsonl(path / "documents.jsonl")
    }
    vectors = VectorIndex.load(path / "vectors.faiss")
    lexical = LexicalIndex.load(path / "bm25", size=len(chunks))
    sentences = [Sentence(**row) for row in _read_jsonl(path / "sentences.jsonl")]  # type: ignore[arg-type]
    chunk_sentences = json.loads((path / "chunk_sentences.json").read_text(encoding="utf-8"))
    all_vectors = np.load(path / "embeddings.npy")
    sentence_vectors = np.ascontiguousarray(all_vectors[len(chunks) :])
    if (
        vectors.size != len(chunks)
        or manifest.chunk_count != len(chunks)
        or len(sentence_vectors) != len(sentences)
        or len(chunk_sentences) != len(chunks)
    ):
        raise IndexMismatchError(f"index at {path} is inconsistent; rebuild it with 'rag index'")
    return SearchIndex(
        path,
        manifest,
        chunks,
        documents,
        vectors,
        lexical,
        sentences,
        chunk_sentences,
        sentence_vectors,
    )


def index_problem(
    manifest: Manifest, config: IndexConfig, embedder: Embedder, corpus: Corpus
) -> str | None:
    """Why the index cannot serve this configuration (None when it can)."""
    return manifest.mismatch(
        embedder=embedder.id,
        dim=embedder.dim,
        chunk_chars=config.chunk_chars,
        chunk_overlap=config.chunk_overlap,
        fingerprint=corpus.fingerprint(),
    )


def open_index(
    config: IndexConfig, embedder: Embedder, *, rebuild: bool = True, progress: bool = False
) -> SearchIndex:
    """Load the index, (re)building it when missing or stale: a mismatch is never served."""
    corpus = load_corpus(config.corpus_dir)
    try:
        index = load_index(config.index_dir)
        problem = index_problem(index.manifest, config, embedder, corpus)
    except IndexMissingError:
        index, problem = None, "no index yet"
    if problem is None and index is not None:
        return index
    if not rebuild:
        raise IndexMismatchError(f"index in {config.index_dir} cannot be used: {problem}")
    log.warning("building index", extra={"reason": problem, "index_dir": str(config.index_dir)})
    build_index(config, embedder, progress=progress, corpus=corpus)
    return load_index(config.index_dir)
