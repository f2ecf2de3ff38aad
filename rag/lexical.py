"""The lexical index: BM25 (bm25s) over jieba tokens, built once and saved with the index."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from rag.tokens import tokenize

# bm25s logs a progress line per load; keep our logs quiet by default.
logging.getLogger("bm25s").setLevel(logging.WARNING)


class LexicalIndex:
    """BM25 scores for every chunk; rows line up with the chunk store."""

    def __init__(self, model: bm25s.BM25, size: int) -> None:
        self._model = model
        self.size = size

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

    def save(self, directory: Path) -> None:
        self._model.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, size: int) -> LexicalIndex:
        model = bm25s.BM25.load(str(directory), show_progress=False)
        return cls(model, size)
