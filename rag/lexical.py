"""The lexical index: BM25 (bm25s) over jieba tokens, built once and saved with the index."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from rag.tokens import tokenize

# bm25s logs a progress line per load; keep our logs quiet by default.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# Postings read per query before the remaining (common) terms are scored on candidates only.
POSTINGS_BUDGET = 200_000


class LexicalIndex:
    """BM25 scores for every chunk; rows line up with the chunk store."""

    def __init__(self, model: bm25s.BM25, size: int) -> None:
        self._model = model
        self.size = size
        self._local = threading.local()

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        model = bm25s.BM25()
        # An empty document still needs a row; bm25s scores its placeholder token 0.
        model.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(model, len(texts))

    def document_frequency(self, token: str) -> int:
        """How many chunks contain ``token`` (0 when it never occurs in the corpus)."""
        column = self._model.vocab_dict.get(token)
        if column is None:
            return 0
        indptr = self._model.scores["indptr"]
        return int(indptr[column + 1] - indptr[column])

    def idf(self, token: str) -> float:
        """Smoothed inverse document frequency, the weight of a token in overlap scores."""
        df = self.document_frequency(token)
        return math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query token is known)."""
        tokens = tokenize(query)
        if not tokens or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores(tokens), dtype=np.float32)

    def search(
        self, query: str, pool: int, extra: Sequence[int] = ()
    ) -> tuple[list[int], dict[int, float]]:
        """The ``pool`` best rows by BM25 (positive scores, best first, ties by row) and the
        exact score of each of them and of the ``extra`` rows (0 where no query token occurs).

        No score is kept per chunk: the query's terms are read rarest first, and their postings
        are added up until ``POSTINGS_BUDGET`` of them are read; the candidates found that way
        (and ``extra``) then get the rest of their score from the remaining, common terms by
        binary search in those terms' postings. The top rows are exact whenever the budget
        covers every term (any corpus below a few hundred thousand chunks); beyond it, a row
        that holds only common terms can be missed (bench/README.md measures how rarely).
        """
        counts: dict[int, int] = {}
        for token in tokenize(query):
            column = self._model.vocab_dict.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts or self.size == 0:
            return [], dict.fromkeys((int(r) for r in extra), 0.0)
        data = self._model.scores["data"]
        indices = self._model.scores["indices"]
        indptr = self._model.scores["indptr"]
        spans = sorted(
            ((int(indptr[c]), int(indptr[c + 1]), n) for c, n in counts.items()),
            key=lambda span: (span[1] - span[0], span[0]),
        )
        read, cut = 0, 0
        while cut < len(spans):
            length = spans[cut][1] - spans[cut][0]
            if cut and read + length > POSTINGS_BUDGET:
                break
            read, cut = read + length, cut + 1
        rare = spans[:cut]  # the rest score only the candidates, below
        # Scores of the rare terms add up in a per-thread buffer (zeroed again where touched),
        # so no array the size of the corpus is allocated or scanned per query.
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) != self.size:
            buffer = self._local.buffer = np.zeros(self.size, dtype=np.float32)
        found = np.concatenate([indices[start:end] for start, end, _ in rare])
        try:
            for start, end, n in rare:
                buffer[indices[start:end]] += n * data[start:end]
            # A row occurs once per rare term at most: the best pool x terms occurrences hold
            # the best ``pool`` rows (ties at the cut all stay).
            keep = pool * len(rare)
            values = buffer[found]
            if len(found) > keep:
                kth = np.partition(values, len(values) - keep)[len(values) - keep]
                found_top = found[values >= kth]
            else:
                found_top = found
            rows = np.unique(found_top)
            partial = buffer[rows]
        finally:
            buffer[found] = 0.0
        if len(rows) > pool:
            kth = np.partition(partial, len(partial) - pool)[len(partial) - pool]
            rows = rows[partial >= kth]
        wanted = np.unique(np.concatenate([rows, np.asarray(extra, dtype=rows.dtype)]))
        total = np.zeros(len(wanted), dtype=np.float32)
        for start, end, n in spans:
            postings = indices[start:end]
            at = np.searchsorted(postings, wanted)
            at_ok = np.minimum(at, len(postings) - 1)
            hit = (at < len(postings)) & (postings[at_ok] == wanted)
            total[hit] += n * data[start:end][at_ok[hit]]
        score = {int(r): float(v) for r, v in zip(wanted, total, strict=True)}
        ranked = sorted((int(r) for r in rows if score[int(r)] > 0), key=lambda r: (-score[r], r))
        return ranked[:pool], score

    def save(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, size: int) -> LexicalIndex:
        # Memory-mapped: the score matrix is paged in from disk where queries touch it.
        model = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        return cls(model, size)
