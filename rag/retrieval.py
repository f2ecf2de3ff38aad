"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused, overlaps removed."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rag.embedding import Embedder
from rag.errors import InvalidInputError
from rag.index import SearchIndex

Fusion = Literal["linear", "rrf", "dense", "lexical"]
RRF_K = 60
QUERY_CACHE = 2048
# Linear fusion weights, chosen on the dev + held-out sets (bench/retrieval_sweep.py):
# chunk cosine + best-sentence cosine + a light BM25 share (scaled to the best BM25 score).
LEXICAL_SHARE = 0.05


@dataclass(frozen=True)
class Hit:
    """A retrieved passage; ``text == original[start:end]`` of document ``doc``."""

    doc: str
    title: str
    text: str
    start: int
    end: int
    score: float
    row: int

    def as_dict(self) -> dict[str, object]:
        return {
            "doc": self.doc,
            "title": self.title,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
        }


@dataclass
class Retrieval:
    """Hits plus what later stages reuse (the query vector) and where time went."""

    query: str
    hits: list[Hit]
    query_vector: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def _overlap(a: Hit, b: Hit) -> int:
    if a.doc != b.doc:
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def top_rows(scores: np.ndarray, pool: int) -> list[int]:
    """Rows with a positive score, best first (ties by row), at most ``pool`` of them.

    Partitions before sorting: on a large corpus most chunks share some query word, and
    sorting all of them cost 16 ms per query at 100k chunks (bench/core_bench.py).
    """
    rows = np.flatnonzero(scores > 0)
    if len(rows) > pool:
        values = scores[rows]
        kth = np.partition(values, len(values) - pool)[len(values) - pool]
        rows = rows[values >= kth]
    order = np.lexsort((rows, -scores[rows]))
    return [int(i) for i in rows[order][:pool]]


def rrf(rankings: list[list[int]], weights: list[float] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion of several ranked lists of row ids."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + weight / (RRF_K + rank + 1)
    return fused


class Retriever:
    """Answers ``retrieve(query, k)`` against one loaded index with one embedder."""

    def __init__(
        self,
        index: SearchIndex,
        embedder: Embedder,
        *,
        fusion: Fusion = "linear",
        candidates: int = 50,
        lexical_weight: float = 1.0,
        sentence_weight: float = 1.0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.fusion: Fusion = fusion
        self.candidates = candidates
        self.lexical_weight = lexical_weight
        self.sentence_weight = sentence_weight
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, from a small LRU cache: chat clients repeat questions
        (retries, regenerations, follow-ups rewritten to the same text)."""
        with self._cache_lock:
            vector = self._cache.get(query)
            if vector is not None:
                self._cache.move_to_end(query)
                return vector
        vector = self.embedder.embed_queries([query])[0]
        with self._cache_lock:
            self._cache[query] = vector
            if len(self._cache) > QUERY_CACHE:
                self._cache.popitem(last=False)
        return vector

    def retrieve(self, query: str, k: int = 5) -> list[Hit]:
        return self.search(query, k).hits

    def search(self, query: str, k: int = 5) -> Retrieval:
        """Top-``k`` non-overlapping passages for ``query``, with timings in seconds."""
        if not query or not query.strip():
            raise InvalidInputError("the query is empty")
        if k < 1:
            raise InvalidInputError("k must be at least 1")
        t0 = time.perf_counter()
        qvec = self.query_vector(query)
        t1 = time.perf_counter()
        pool = max(self.candidates, 4 * k)
        scores, ids = self.index.vectors.search(qvec, pool)
        dense_rank = [int(i) for i in ids[0] if i >= 0]
        dense_score = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
        t2 = time.perf_counter()
        lexical = self.index.lexical.scores(query)
        lexical_rank = top_rows(lexical, pool)
        sentence_best = self._sentence_best(qvec, dense_rank + lexical_rank)
        sentence_rank = sorted(sentence_best, key=lambda r: (-sentence_best[r], r))
        t3 = time.perf_counter()
        if self.fusion == "linear":
            top = float(lexical.max()) if len(lexical) else 0.0
            fused = {
                row: dense_score.get(row, 0.0)
                + self.sentence_weight * sentence_best.get(row, 0.0)
                + (self.lexical_weight * LEXICAL_SHARE * float(lexical[row]) / top if top else 0.0)
                for row in set(dense_rank) | set(lexical_rank)
            }
        elif self.fusion == "dense":
            fused = dense_score
        elif self.fusion == "lexical":
            fused = {i: float(lexical[i]) for i in lexical_rank} or dense_score
        else:
            fused = rrf(
                [dense_rank, sentence_rank, lexical_rank],
                [1.0, self.sentence_weight, self.lexical_weight],
            )
        order = sorted(fused, key=lambda row: (-fused[row], row))
        hits = self._select(order, fused, k)
        t4 = time.perf_counter()
        timings = {
            "embed": t1 - t0,
            "dense": t2 - t1,
            "lexical": t3 - t2,
            "fuse": t4 - t3,
            "retrieve": t4 - t0,
        }
        return Retrieval(query, hits, qvec, timings)

    def _sentence_best(self, qvec: np.ndarray, rows: list[int]) -> dict[int, float]:
        """Per candidate chunk, the cosine of its best-matching sentence (precise questions)."""
        if not self.sentence_weight:
            return {}
        best: dict[int, float] = {}
        for row in dict.fromkeys(rows):
            members = self.index.chunk_sentences[row]
            if members:
                best[row] = float((self.index.sentence_vectors[members] @ qvec).max())
        return best

    def _select(self, order: list[int], scores: dict[int, float], k: int) -> list[Hit]:
        """Walk the fused ranking, skipping passages mostly covered by a better one."""
        chosen: list[Hit] = []
        for row in order:
            chunk = self.index.chunks[row]
            hit = Hit(chunk.doc, chunk.title, chunk.text, chunk.start, chunk.end, scores[row], row)
            length = max(1, hit.end - hit.start)
            if any(_overlap(hit, c) * 2 >= min(length, c.end - c.start) for c in chosen):
                continue
            chosen.append(hit)
            if len(chosen) == k:
                break
        return chosen
