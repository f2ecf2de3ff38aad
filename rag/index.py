"""Build, save and open the on-disk index (chunks + vectors + BM25 + manifest).

A build is written into its own directory and published by atomically replacing the
``current`` symlink, so a killed build never damages the index being served. Vectors of
unchanged chunks are reused from the previous build, keyed by the exact text embedded.
Only chunks are embedded at build time; sentences are embedded when a question first needs
them (rag/sentence_vectors.py). Chunks and sentences are stored as memory-mapped offset tables
(rag/chunk_store.py), the articles as one memory-mapped text blob decoded per article when read
(rag/document_store.py), and BM25 is memory-mapped, so a large index loads fast and small.
Builds of one folder take turns under a file lock; every file's checksum goes into the
manifest, and loading checks them and the files' consistency before anything is served.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from rag.checksums import MANIFEST, build_checksums, checksum_problem
from rag.chunk_store import (
    CHUNKS_FILE,
    ChunkSentences,
    ChunkTable,
    Sentence,
    SentenceTable,
    read_tables,
    sentence_rows,
    write_tables,
)
from rag.chunking import Chunk, chunk_corpus
from rag.corpus import Corpus, load_corpus
from rag.document_store import (
    IDS_FILE,
    DocumentStore,
    StoredDocument,  # noqa: F401 (re-exported: routes and tests import it from here)
    document_info,
    write_documents,
)
from rag.embedding import Embedder
from rag.errors import (
    IndexDamagedError,
    IndexMismatchError,
    IndexMissingError,
    IndexWriteError,
)
from rag.index_check import check_index, damaged, read_part
from rag.index_lock import index_lock
from rag.lexical import LexicalIndex
from rag.manifest import FORMAT_VERSION, Manifest, SkippedInfo
from rag.mentions import mentioned
from rag.sentence_vectors import SentenceVectors
from rag.sentences import split_sentences
from rag.vectors import VectorIndex, choose_kind

log = logging.getLogger(__name__)

CURRENT = "current"
BUILDS = "builds"
EMBED_BATCH = 32
# A build whose embedding should take longer than this is announced with an estimate first;
# the rate is what e5-small managed on 2 CPU cores (README, "index build throughput").
LARGE_BUILD_SECONDS = 600
NOMINAL_TEXTS_PER_SECOND = 15.0
PROGRESS_LOG_SECONDS = 30.0


MENTIONS_KEPT = 4096  # words ``SearchIndex.mentions`` remembers


@dataclass
class SearchIndex:
    """Everything retrieval and answering need, loaded in memory from one complete build."""

    path: Path
    manifest: Manifest
    chunks: ChunkTable
    documents: DocumentStore  # a Mapping[str, StoredDocument]: articles decoded when read
    vectors: VectorIndex
    lexical: LexicalIndex
    sentences: SentenceTable
    chunk_sentences: ChunkSentences  # per chunk row: its sentence rows, in order
    # Embedded on first use with the embedder bound by the Retriever (one cache per index).
    sentence_vectors: SentenceVectors = dataclasses.field(init=False)
    # Words already settled by ``mentions``: a question of several parts asks again for each
    # part's names, and a build never changes.
    _mentioned: dict[str, bool] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sentence_vectors = SentenceVectors(self.sentence_text, self.manifest.dim)
        self._mentioned = {}

    def mentions(self, word: str) -> bool:
        """Whether an article's passages, title or metadata hold ``word`` (case aside), found
        from the lexical index without reading every article (rag/mentions.py)."""
        found = self._mentioned.get(word)
        if found is None:
            if len(self._mentioned) >= MENTIONS_KEPT:
                self._mentioned.clear()
            found = mentioned(word, self.lexical, self.documents, self.chunks.rows[:, 0])
            self._mentioned[word] = found
        return found

    def sentence_text(self, row: int) -> str:
        s = self.sentences[row]
        return self.documents[s.doc].text[s.start : s.end]


@dataclass(frozen=True)
class IndexConfig:
    """The build parameters that must match between an index and the running service, and
    how to treat the folder: seconds to wait for another build, what to do with damage."""

    corpus_dir: Path
    index_dir: Path
    chunk_chars: int = 200
    chunk_overlap: int = 1
    ann: str = "auto"
    ann_threshold: int = 50_000
    lock_timeout: float = 600.0
    on_damaged: Literal["rebuild", "fail"] = "rebuild"


def passage_text(chunk: Chunk) -> str:
    """What gets embedded for a chunk: the article title gives short chunks their context."""
    return f"{chunk.title}\n{chunk.text}"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_path(index_dir: Path) -> Path:
    return index_dir / CURRENT


def _reusable_vectors(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """Vectors of the live build keyed by embedded text, if it used the same embedder and
    its vector files are intact (a damaged build must not pass wrong vectors on)."""
    live = current_path(index_dir).resolve()
    try:
        manifest = Manifest.read(live / MANIFEST)
        if manifest.embedder != embedder.id or manifest.dim != embedder.dim:
            return {}
        if manifest.files is not None:
            bad = checksum_problem(live, manifest.files, only={"keys.txt", "embeddings.npy"})
            if bad is not None:
                log.warning("not reusing damaged vectors", extra={"file": bad[0], "why": bad[1]})
                return {}
        keys = (live / "keys.txt").read_text(encoding="utf-8").split()
        vectors = np.load(live / "embeddings.npy")
    except (OSError, ValueError, EOFError):
        return {}
    if vectors.ndim != 2 or len(keys) != len(vectors) or vectors.shape[1] != embedder.dim:
        return {}
    return dict(zip(keys, vectors, strict=True))


def _batches(items: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sentence_table(
    chunks: Sequence[Chunk], texts: dict[str, str]
) -> tuple[list[Sentence], list[list[int]]]:
    """Unique sentences of all chunks and, per chunk, the rows of its sentences."""
    spans = [split_sentences(texts[c.doc], c.start, c.end) for c in chunks]
    return sentence_rows(chunks, spans)


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    reuse: dict[str, np.ndarray],
    progress: bool,
    batch_size: int = EMBED_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str], int]:
    """Passage vectors for ``texts``, embedding only those missing from ``reuse``.

    Returns the matrix, the per-row text keys and how many texts were newly embedded;
    ``on_progress(done, total)`` hears of each embedded batch (for a server's build status).
    """
    keys = [_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in reuse}.items())
    _warn_if_large(len(todo))
    fresh: dict[str, np.ndarray] = {}
    started = last_log = time.monotonic()
    with tqdm(total=len(todo), desc="embedding", unit="text", disable=not progress) as bar:
        for batch in _batches(todo, batch_size):
            vectors = embedder.embed_passages([t for _, t in batch])
            fresh.update((k, v) for (k, _), v in zip(batch, vectors, strict=True))
            bar.update(len(batch))
            if on_progress is not None:
                on_progress(len(fresh), len(todo))
            now = time.monotonic()
            if now - last_log >= PROGRESS_LOG_SECONDS:  # for logs, where no bar is drawn
                last_log = now
                rate = len(fresh) / (now - started)
                log.info(
                    "embedding",
                    extra={
                        "done": len(fresh),
                        "total": len(todo),
                        "seconds_left": round((len(todo) - len(fresh)) / rate),
                    },
                )
    table = {**reuse, **fresh}
    matrix = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        matrix[row] = table[key]
    return matrix, keys, len(todo)


def _warn_if_large(count: int) -> None:
    """Say up front when embedding will take long, with an estimate, rather than go quiet."""
    seconds = count / NOMINAL_TEXTS_PER_SECOND
    if seconds < LARGE_BUILD_SECONDS:
        return
    hours, minutes = divmod(round(seconds / 60), 60)
    log.warning(
        f"large index build: {count} texts to embed, roughly {hours}h{minutes:02d}m at "
        f"{NOMINAL_TEXTS_PER_SECOND:g} texts/s; interrupting it leaves the current index "
        "serving, and a rebuild reuses nothing from it",
        extra={"texts": count, "estimated_seconds": round(seconds)},
    )


def _clean_stale_builds(index_dir: Path, keep: set[str]) -> None:
    """Remove everything in ``builds/`` except ``keep``, and half-swapped links.

    Called under the build lock, so no other build is running: a ``.tmp-*`` folder left
    here is from a build that died.
    """
    builds = index_dir / BUILDS
    for child in builds.iterdir() if builds.is_dir() else []:
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
    for link in index_dir.glob(".current-*"):
        link.unlink(missing_ok=True)


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
    on_progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Chunk, embed and index the corpus, then atomically publish the result.

    Holds the folder's build lock throughout (waiting up to ``config.lock_timeout`` seconds
    for another build) and fails before any embedding when the folder cannot be written.
    ``embed_batch`` is how many texts go to one ``embed_passages`` call; an embedder that
    spreads a call over many workers wants it large.
    """
    corpus = corpus or load_corpus(config.corpus_dir)  # a bad corpus fails before any lock
    with index_lock(config.index_dir, config.lock_timeout):
        return _build_locked(config, embedder, progress, corpus, embed_batch, on_progress)


def _build_locked(
    config: IndexConfig,
    embedder: Embedder,
    progress: bool,
    corpus: Corpus,
    embed_batch: int = EMBED_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    started = time.perf_counter()
    index_dir = config.index_dir
    builds = index_dir / BUILDS
    live = current_path(index_dir)
    previous = live.resolve().name if live.exists() else ""
    _clean_stale_builds(index_dir, keep={previous})  # what died before us goes first
    name = time.strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:8]}"
    tmp = builds / f".tmp-{os.getpid()}-{name}"
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise IndexWriteError(
            f"cannot write into {builds} ({exc.strerror or exc}); make it writable or set "
            "RAG_INDEX_DIR to a writable folder"
        ) from None
    try:
        manifest = _write_build(
            config, embedder, progress, corpus, tmp, started, embed_batch, on_progress
        )
        os.replace(tmp, builds / name)
    except OSError as exc:  # e.g. the disk filled up: the live index is untouched
        why = exc.strerror or f"{exc}: is the disk full?"  # NumPy's short write has no errno
        raise IndexWriteError(
            f"the new build could not be written to {builds} ({why}); the index was left as it was"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless the build failed
    _publish(index_dir, name)
    _clean_stale_builds(index_dir, keep={name, previous})
    log.info(
        "index built",
        extra={
            "path": str(builds / name),
            "chunks": manifest.chunk_count,
            "embedded": manifest.embedded,
            "seconds": manifest.build_seconds,
        },
    )
    return manifest


def _write_build(
    config: IndexConfig,
    embedder: Embedder,
    progress: bool,
    corpus: Corpus,
    tmp: Path,
    started: float,
    embed_batch: int = EMBED_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Every file of one build into ``tmp``, the manifest with their checksums last."""
    for skipped in corpus.skipped:
        log.warning("skipped file", extra={"path": str(skipped.path), "reason": skipped.reason})
    chunks = chunk_corpus(corpus, max_chars=config.chunk_chars, overlap=config.chunk_overlap)
    reuse = _reusable_vectors(config.index_dir, embedder)
    doc_texts = {d.id: d.text for d in corpus.documents}
    sentences, chunk_sentences = sentence_table(chunks, doc_texts)
    texts = [passage_text(c) for c in chunks]
    vectors, keys, embedded = embed_texts(
        texts, embedder, reuse, progress, embed_batch, on_progress
    )

    kind = choose_kind(config.ann, len(chunks), config.ann_threshold)
    _save_vectors(VectorIndex.build(vectors, kind), tmp / "vectors.faiss")
    np.save(tmp / "embeddings.npy", vectors)
    (tmp / "keys.txt").write_text("\n".join(keys), encoding="utf-8")
    LexicalIndex.build([c.text for c in chunks]).save(tmp / "bm25")
    write_tables(tmp, [d.id for d in corpus.documents], chunks, sentences, chunk_sentences)
    per_doc: dict[str, int] = {}
    for chunk in chunks:
        per_doc[chunk.doc] = per_doc.get(chunk.doc, 0) + 1
    write_documents(tmp, corpus.documents, per_doc)
    manifest = Manifest(
        embedder=embedder.id,
        dim=embedder.dim,
        chunk_chars=config.chunk_chars,
        chunk_overlap=config.chunk_overlap,
        vector_index=kind,
        corpus_dir=str(config.corpus_dir.resolve()),
        corpus_fingerprint=corpus.fingerprint(),
        documents=[document_info(d, per_doc.get(d.id, 0)) for d in corpus.documents],
        document_count=len(corpus.documents),
        skipped=[SkippedInfo(path=str(s.path), reason=s.reason) for s in corpus.skipped],
        chunk_count=len(chunks),
        embedded=embedded,
        reused=len(texts) - embedded,
        build_seconds=round(time.perf_counter() - started, 3),
        files=build_checksums(tmp),
    )
    manifest.write(tmp / MANIFEST)  # last file written: marks the build complete
    return manifest


def _save_vectors(vectors: VectorIndex, path: Path) -> None:
    """Save, turning FAISS's RuntimeError for a failed write (a full disk) into an OSError."""
    try:
        vectors.save(path)
    except RuntimeError as exc:
        text = str(exc)
        code = next((c for c in errno.errorcode if os.strerror(c) in text), errno.EIO)
        why = os.strerror(code) if code != errno.EIO else "a short write: is the disk full?"
        raise OSError(code, why, str(path)) from None


def load_index(index_dir: Path, *, verify: bool = False) -> SearchIndex:
    """Load the live build; the symlink is resolved once so a concurrent swap cannot mix builds.

    Every file is checked against its checksum and the files against each other first: a
    damaged build raises :class:`IndexDamagedError` naming the file, never serves. Files whose
    stat is unchanged since they were last hashed are not hashed again (rag/checksums.py)
    unless ``verify``. Articles are decoded and checked when first read (rag/document_store.py);
    ``verify`` reads them all now.
    """
    started = time.monotonic()
    link = current_path(index_dir)
    if not (link / MANIFEST).is_file():
        raise IndexMissingError(f"no index in {index_dir}: run 'rag index' first")
    path = link.resolve()
    manifest = read_part(path, MANIFEST, Manifest.read)
    if manifest.format_version != FORMAT_VERSION:  # another layout: rebuilt, not read
        raise IndexMismatchError(
            f"index format {manifest.format_version} != {FORMAT_VERSION}: run 'rag index'"
        )
    if manifest.files is not None:
        bad = checksum_problem(path, manifest.files, full=verify)
        if bad is not None:
            raise damaged(path / bad[0], bad[1])
    documents = read_part(path, IDS_FILE, lambda p: DocumentStore(path))
    manifest.documents = documents.infos()
    chunks, sentences, chunk_sentences = read_part(
        path, CHUNKS_FILE, lambda p: read_tables(path, documents.ids, documents)
    )
    # Chunk vectors, memory-mapped: paged in where HNSW results are re-scored.
    exact = read_part(path, "embeddings.npy", lambda p: np.load(p, mmap_mode="r"))
    vectors = read_part(path, "vectors.faiss", lambda p: VectorIndex.load(p, exact))
    lexical = read_part(path, "bm25", lambda p: LexicalIndex.load(p, size=len(chunks)))
    index = SearchIndex(
        path,
        manifest,
        chunks,
        documents,
        vectors,
        lexical,
        sentences,
        chunk_sentences,
    )
    check_index(index, documents, exact, full=verify)
    # One line per read from disk: a server should read each build once (tests count these).
    seconds = round(time.monotonic() - started, 3)
    log.info("index read", extra={"build": path.name, "chunks": len(chunks), "seconds": seconds})
    return index


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
    config: IndexConfig,
    embedder: Embedder,
    *,
    rebuild: bool = True,
    progress: bool = False,
    announce: Callable[[str], None] | None = None,
) -> SearchIndex:
    """Load the index, (re)building it when missing or stale: a mismatch is never served.

    A damaged index is rebuilt too unless ``config.on_damaged`` is ``"fail"`` (then its
    :class:`IndexDamagedError` is raised). ``announce`` hears why a build is starting.
    """
    corpus = load_corpus(config.corpus_dir)
    seen = _build_id(config.index_dir)
    index, problem, broken = _check(config, embedder, corpus)
    if index is not None:
        return index
    if broken is not None and (config.on_damaged == "fail" or not rebuild):
        raise broken
    if not rebuild:
        raise IndexMismatchError(f"index in {config.index_dir} cannot be used: {problem}")
    with index_lock(config.index_dir, config.lock_timeout):
        if _build_id(config.index_dir) != seen:  # built by another process while we waited
            index, problem, broken = _check(config, embedder, corpus)
            if index is not None:
                return index
        level = logging.WARNING if broken is not None else logging.INFO
        log.log(
            level, "building index", extra={"reason": problem, "index_dir": str(config.index_dir)}
        )
        if announce is not None:
            announce(problem)
        build_index(config, embedder, progress=progress, corpus=corpus)
    return load_index(config.index_dir)


def _build_id(index_dir: Path) -> str | None:
    try:
        return os.readlink(current_path(index_dir))
    except OSError:
        return None


def _check(
    config: IndexConfig, embedder: Embedder, corpus: Corpus
) -> tuple[SearchIndex | None, str, IndexDamagedError | None]:
    """The index when it can serve ``config``; otherwise why not (and the damage, if any)."""
    try:
        index = load_index(config.index_dir)
    except IndexMissingError:
        return None, "no index yet", None
    except IndexDamagedError as exc:
        return None, exc.message, exc
    except IndexMismatchError as exc:  # an older layout: rebuilt, reusing its chunk vectors
        return None, str(exc), None
    problem = index_problem(index.manifest, config, embedder, corpus)
    return (index, "", None) if problem is None else (None, problem, None)
