"""Sentence embeddings computed when first needed, batched, and kept in an LRU cache.

Embedding every sentence at build time made each chunk cost 4.4 embedded texts; only the
sentences of the few chunks a question retrieves are ever compared with it (best-sentence
retrieval scores, evidence ranking, LLM verification). Those are embedded on first use, in one
batch per question, and cached, so a build embeds one text per chunk (bench/README.md has the
trade-off measured).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from rag.embedding import Embedder
from rag.errors import EmbedderError

SENTENCE_CACHE = 50_000  # vectors kept (1.5 kB each: 75 MB at most)


class SentenceVectors:
    """``vectors[rows]`` → an ``(len(rows), dim)`` matrix of passage embeddings of sentences.

    Rows not cached are embedded together in one call. Indexing by a list of rows mirrors a
    numpy matrix, which is what the callers used when every sentence was embedded at build.
    """

    def __init__(
        self, text: Callable[[int], str], dim: int, capacity: int = SENTENCE_CACHE
    ) -> None:
        self._text = text
        self.dim = dim
        self.capacity = capacity
        self.embedder: Embedder | None = None
        self.embedded = 0  # sentences embedded so far by this process (for benchmarks)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, embedder: Embedder) -> None:
        """Use ``embedder`` for sentences not cached (the one the index was built with)."""
        if embedder.dim != self.dim:
            raise EmbedderError(f"embedder gives {embedder.dim}-d vectors, the index {self.dim}")
        self.embedder = embedder

    def preload(self, rows: Sequence[int], matrix: np.ndarray) -> None:
        """Put known vectors in the cache (benchmarks: the build-everything baseline)."""
        with self._lock:
            self.capacity = max(self.capacity, len(self._cache) + len(rows))
            for row, vector in zip(rows, matrix, strict=True):
                self._cache[int(row)] = np.asarray(vector, dtype=np.float32)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """The cached rows and their vectors (to keep on disk between training runs)."""
        with self._lock:
            rows = np.fromiter(self._cache.keys(), dtype=np.int64, count=len(self._cache))
            vectors = (
                np.stack(list(self._cache.values()))
                if self._cache
                else np.zeros((0, self.dim), dtype=np.float32)
            )
        return rows, vectors

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def __getitem__(self, rows: Sequence[int]) -> np.ndarray:
        rows = [int(r) for r in rows]
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for row in rows:
                vector = self._cache.get(row)
                if vector is not None:
                    self._cache.move_to_end(row)
                    found[row] = vector
        missing = [r for r in dict.fromkeys(rows) if r not in found]
        if missing:
            if self.embedder is None:
                raise EmbedderError("sentence vectors need an embedder: call bind() first")
            fresh = self.embedder.embed_passages([self._text(r) for r in missing])
            found.update(zip(missing, fresh, strict=True))
            with self._lock:
                self.embedded += len(missing)
                for row in missing:
                    self._cache[row] = found[row]
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[r] for r in rows])
