"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused, overlaps removed."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rag.embedding import Embedder, QueryBatcher
from rag.errors import InvalidInputError
from rag.index import SearchIndex

Fusion = Literal["linear", "rrf", "dense", "lexical"]
RRF_K = 60
QUERY_CACHE = 2048
# Linear fusion weights, chosen on the dev + held-out sets (bench/retrieval_sweep.py):
# chunk cosine + best-sentence cosine + a light BM25 share (scaled to the best BM25 score).
LEXICAL_SHARE = 0.05
# Best-sentence scores are computed for this many of the best candidates by chunk cosine and
# BM25 (their sentences are embedded on first use, the answer layer's 8 chunks among them).
# At 24 the top 8 of all 78 dev and held-out questions equal those of scoring every candidate;
# 12 and 16 changed a few and, with the current answer layer, cost up to 0.04 of held-out
# sentence accuracy (bench/README.md, "Embedding less").
SENTENCE_DEPTH = 24


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
        sentence_depth: int | None = SENTENCE_DEPTH,
        embed_slots: int | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        index.sentence_vectors.bind(embedder)
        self.sentence_depth = sentence_depth  # None: every candidate (all sentences embedded)
        self.batcher = QueryBatcher(embedder, embed_slots)
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
        vector = self.batcher.embed(query)
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
        lexical_rank, lexical = self.index.lexical.search(query, pool, dense_rank)
        top = max(lexical.values(), default=0.0)
        # Without sentences: the chunk cosine plus the BM25 share, which picks the candidates
        # whose sentences are scored.
        base = {
            row: dense_score.get(row, 0.0)
            + (self.lexical_weight * LEXICAL_SHARE * lexical[row] / top if top > 0 else 0.0)
            for row in set(dense_rank) | set(lexical_rank)
        }
        t3 = time.perf_counter()
        first = sorted(base, key=lambda row: (-base[row], row))
        depth = len(first) if self.sentence_depth is None else max(self.sentence_depth, k)
        rerank = self.fusion in ("linear", "rrf")
        sentence_best = self._sentence_best(qvec, first[:depth]) if rerank else {}
        sentence_rank = sorted(sentence_best, key=lambda r: (-sentence_best[r], r))
        t4 = time.perf_counter()
        if self.fusion == "linear":
            fused = {
                row: base[row] + self.sentence_weight * best for row, best in sentence_best.items()
            }
            # Candidates without a sentence score rank below those with one, scored as if their
            # best sentence were the lowest seen (capped so the scores still fall down the list).
            lowest = min(sentence_best.values(), default=0.0)
            floor = min(fused.values(), default=float("inf"))
            rest = [row for row in first if row not in fused]
            fused.update(
                (row, min(base[row] + self.sentence_weight * lowest, floor)) for row in rest
            )
        elif self.fusion == "dense":
            fused = dense_score
        elif self.fusion == "lexical":
            fused = {i: lexical[i] for i in lexical_rank} or dense_score
        else:
            fused = rrf(
                [dense_rank, sentence_rank, lexical_rank],
                [1.0, self.sentence_weight, self.lexical_weight],
            )
        if self.fusion == "linear":
            scored = sorted(sentence_best, key=lambda row: (-fused[row], row))
            order = scored + [row for row in first if row not in sentence_best]
        else:
            order = sorted(fused, key=lambda row: (-fused[row], row))
        hits = self._select(order, fused, k)
        t5 = time.perf_counter()
        timings = {
            "embed": t1 - t0,
            "dense": t2 - t1,
            "lexical": t3 - t2,
            "sentences": t4 - t3,
            "fuse": t5 - t4,
            "retrieve": t5 - t0,
        }
        return Retrieval(query, hits, qvec, timings)

    def _sentence_best(self, qvec: np.ndarray, rows: list[int]) -> dict[int, float]:
        """Per candidate chunk, the cosine of its best-matching sentence (precise questions).

        The sentences of all ``rows`` are fetched at once: one embedding batch for those not
        cached."""
        if not self.sentence_weight or not rows:
            return {}
        members = {row: self.index.chunk_sentences[row] for row in dict.fromkeys(rows)}
        wanted = list(dict.fromkeys(r for m in members.values() for r in m))
        if not wanted:
            return {}
        sims = self.index.sentence_vectors[wanted] @ qvec
        cosine = dict(zip(wanted, (float(x) for x in sims), strict=True))
        return {row: max(cosine[r] for r in m) for row, m in members.items() if m}

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
