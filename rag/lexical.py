"""The lexical index: BM25 (bm25s) over jieba tokens, built once and saved with the index.

Besides bm25s's postings (per term, rows in row order with their score), a build saves each
term's postings in impact order (best score first) too, so a query whose terms are all common
can find its exact top rows from the heads of those lists (``LexicalIndex.search``).
"""

from __future__ import annotations

import logging
import math
import re
import sys
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
IMPACT_ROWS = "impact_rows.npy"  # int32: each term's rows, best score first (ties by row)
IMPACT_SCORES = "impact_scores.npy"  # float32: their scores
# Impact-ordered search: postings read per query (split over its terms, best impacts first),
# and how many times ``pool`` rows of the best partial sums are then scored exactly.
IMPACT_BUDGET = 100_000
IMPACT_CANDIDATES = 4


class LexicalIndex:
    """BM25 scores for every chunk; rows line up with the chunk store."""

    def __init__(
        self,
        model: bm25s.BM25,
        size: int,
        impacts: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self._model = model
        self.size = size
        self._local = threading.local()
        self._impacts = impacts if impacts is not None else impact_order(model)
        self._terms: tuple[str, np.ndarray] | None = None  # see ``_vocabulary``
        self._vocabulary_lock = threading.Lock()

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        model = bm25s.BM25()
        # An empty document still needs a row; bm25s scores its placeholder token 0.
        # Interned, a token costs a pointer per occurrence rather than a string (~5 GB of
        # token lists at a million chunks otherwise).
        tokens = [[sys.intern(w) for w in tokenize(t)] or [""] for t in texts]
        model.index(tokens, show_progress=False)
        return cls(model, len(texts))

    def document_frequency(self, token: str) -> int:
        """How many chunks contain ``token`` (0 when it never occurs in the corpus)."""
        column = self._model.vocab_dict.get(token)
        if column is None:
            return 0
        indptr = self._model.scores["indptr"]
        return int(indptr[column + 1] - indptr[column])

    def terms_containing(self, text: str) -> np.ndarray:
        """Columns of the vocabulary terms that contain ``text`` (sorted, each once): a substring
        search over the vocabulary (built once, one line per term), not over the corpus."""
        terms, starts = self._vocabulary()
        hits = [m.start() for m in re.finditer(re.escape(text), terms)] if text else []
        if not hits:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.searchsorted(starts, np.asarray(hits), side="right") - 1)

    def postings_count(self, columns: np.ndarray) -> int:
        """How many postings the terms of ``columns`` hold together."""
        indptr = self._model.scores["indptr"]
        return int(np.sum(indptr[columns + 1] - indptr[columns])) if len(columns) else 0

    def rows_with(self, columns: np.ndarray) -> np.ndarray:
        """The rows (chunks) holding any of the terms of ``columns``, sorted, each once."""
        indices = self._model.scores["indices"]
        indptr = self._model.scores["indptr"]
        parts = [indices[indptr[c] : indptr[c + 1]] for c in columns]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _vocabulary(self) -> tuple[str, np.ndarray]:
        """Every term in column order, one per line, and where each line starts."""
        with self._vocabulary_lock:
            if self._terms is None:
                vocab = self._model.vocab_dict
                ordered = [""] * len(vocab)
                for term, column in vocab.items():
                    ordered[column] = term
                lengths = np.fromiter((len(t) + 1 for t in ordered), np.int64, len(ordered))
                starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
                self._terms = ("\n".join(ordered), starts)
            return self._terms

    def postings(self, query: str) -> int:
        """How many postings the query's terms hold (what exact scoring would read)."""
        return sum(self.document_frequency(t) for t in set(tokenize(query)))

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

        No score is kept per chunk. When the query's postings fit in ``POSTINGS_BUDGET`` they
        are added up (only the rows touched), and the best rows and ``extra`` are scored exactly
        by binary search in each term's postings. Beyond it, the best rows come from the heads
        of the impact-ordered lists (``_search_by_impact``): exact when those heads prove it,
        otherwise the best of the rows they reach (bench/README.md measures how often).
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
        if sum(end - start for start, end, _ in spans) > POSTINGS_BUDGET:
            return self._search_by_impact(spans, pool, extra)
        self._local.exact = True
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
        total = self._exact(spans, wanted)
        score = {int(r): float(v) for r, v in zip(wanted, total, strict=True)}
        ranked = sorted((int(r) for r in rows if score[int(r)] > 0), key=lambda r: (-score[r], r))
        return ranked[:pool], score

    def _exact(self, spans: list[tuple[int, int, int]], rows: np.ndarray) -> np.ndarray:
        """The BM25 score of each of the sorted ``rows``: each term's postings searched, the
        terms added in ``spans`` order (so a row scores the same on every path)."""
        data = self._model.scores["data"]
        indices = self._model.scores["indices"]
        total = np.zeros(len(rows), dtype=np.float32)
        for start, end, n in spans:
            postings = indices[start:end]
            at = np.searchsorted(postings, rows)
            at_ok = np.minimum(at, len(postings) - 1)
            hit = (at < len(postings)) & (postings[at_ok] == rows)
            total[hit] += n * data[start:end][at_ok[hit]]
        return total

    def _search_by_impact(
        self, spans: list[tuple[int, int, int]], pool: int, extra: Sequence[int]
    ) -> tuple[list[int], dict[int, float]]:
        """Top ``pool`` rows from the heads of the impact-ordered lists: each term's best
        ``IMPACT_BUDGET / terms`` postings are added up (rows touched only), the
        ``IMPACT_CANDIDATES x pool`` best partial sums are scored exactly, and the best of those
        returned. Exact (``exact`` says so) when no row left out could reach the last one
        returned: its partial sum plus every term's next impact stays below it."""
        impact_rows, impact_scores = self._impacts
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) != self.size:
            buffer = self._local.buffer = np.zeros(self.size, dtype=np.float32)
        per_term = max(pool, IMPACT_BUDGET // len(spans))
        heads, bound = [], 0.0
        for start, end, n in spans:
            stop = min(end, start + per_term)
            heads.append((start, stop, n))
            if stop < end:
                bound += n * float(impact_scores[stop])
        found = np.concatenate([impact_rows[start:stop] for start, stop, _ in heads])
        slot = getattr(self._local, "slot", None)
        if slot is None or len(slot) != self.size:
            slot = self._local.slot = np.zeros(self.size, dtype=np.int32)
        try:
            for start, stop, n in heads:
                buffer[impact_rows[start:stop]] += n * impact_scores[start:stop]
            # Each row once, without sorting: the last of its occurrences keeps it.
            place = np.arange(len(found), dtype=np.int32)
            slot[found] = place
            found = found[slot[found] == place]
            values = buffer[found]
        finally:
            buffer[found] = 0.0
        keep = pool * IMPACT_CANDIDATES
        rest = 0.0  # the largest partial sum left out
        if len(found) > keep:
            kth = float(values[np.argpartition(-values, keep - 1)[keep - 1]])
            chosen = values >= kth * (1 - 1e-5)  # ties, and sums that differ in the last bit
            if not chosen.all():
                rest = float(values[~chosen].max())
            found = found[chosen]
        rows = np.unique(found.astype(np.int64))
        scores = self._exact(spans, rows)
        order = np.lexsort((rows, -scores))[:pool]
        best_rows, best_scores = rows[order], scores[order]
        last = float(best_scores[-1]) if len(best_scores) == pool else 0.0
        self._local.exact = (bound == 0.0 and rest == 0.0) or last > (rest + bound) * (1 + 1e-6)
        extra_rows = np.unique(np.asarray(extra, dtype=np.int64))
        score = {int(r): float(v) for r, v in zip(best_rows, best_scores, strict=True)}
        extra_scores = self._exact(spans, extra_rows)
        score.update((int(r), float(v)) for r, v in zip(extra_rows, extra_scores, strict=True))
        ranked = [int(r) for r, v in zip(best_rows, best_scores, strict=True) if v > 0]
        return ranked, score

    @property
    def exact(self) -> bool:
        """Whether this thread's last ``search`` returned the exact top rows."""
        return bool(getattr(self._local, "exact", True))

    def save(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)
        rows, scores = self._impacts
        np.save(directory / IMPACT_ROWS, rows)
        np.save(directory / IMPACT_SCORES, scores)

    @classmethod
    def load(cls, directory: Path, size: int) -> LexicalIndex:
        # Memory-mapped: the score matrix is paged in from disk where queries touch it.
        model = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        impacts = (
            np.load(directory / IMPACT_ROWS, mmap_mode="r"),
            np.load(directory / IMPACT_SCORES, mmap_mode="r"),
        )
        rows, scores = impacts
        postings = len(model.scores["indices"])
        if rows.shape != (postings,) or scores.shape != (postings,):
            raise ValueError(f"{IMPACT_ROWS}: {rows.shape} rows for {postings} postings")
        return cls(model, size, impacts)


def impact_order(model: bm25s.BM25) -> tuple[np.ndarray, np.ndarray]:
    """Each term's postings sorted by score, best first, ties by row: rows and scores."""
    data = np.asarray(model.scores["data"], dtype=np.float32)
    indices = np.asarray(model.scores["indices"])
    indptr = np.asarray(model.scores["indptr"], dtype=np.int64)
    term = np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))
    order = np.lexsort((indices, -data, term))
    return indices[order].astype(np.int32), data[order]
