"""Score the sentences of retrieved passages as evidence for a question.

The same scorer picks sentences for extractive answers and aligns LLM sentences to their
support, so both modes cite by one rule: dense similarity plus IDF-weighted word overlap,
with numbers, dates and the expected kind of answer weighted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.index import SearchIndex
from rag.question import QuestionInfo, has_number
from rag.tokens import tokenize

# Weights of the evidence score (chosen on the dev + held-out sets; see bench/README.md).
W_DENSE = 1.0
W_OVERLAP = 0.35
W_EXPECTED = 0.04
W_YEAR = 0.03
W_RANK = 0.03


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate evidence sentence; ``text == documents[doc].text[start:end]``."""

    row: int
    doc: str
    start: int
    end: int
    text: str
    dense: float
    overlap: float
    score: float
    chunk_rank: int


@lru_cache(maxsize=65536)
def sentence_terms(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def overlap_score(index: SearchIndex, terms: tuple[str, ...], text: str) -> float:
    """Share of the question's IDF weight whose terms occur in ``text`` (0..1)."""
    if not terms:
        return 0.0
    found = sentence_terms(text)
    weights = [index.lexical.idf(t) for t in terms]
    total = sum(weights)
    hit = sum(w for t, w in zip(terms, weights, strict=True) if t in found)
    return hit / total if total else 0.0


def _expected_bonus(info: QuestionInfo, text: str) -> float:
    if info.expects == "number":
        return 1.0 if has_number(text) else 0.0
    if info.expects == "time":
        return 1.0 if any(u in text for u in ("年", "月", "日")) and has_number(text) else 0.0
    return 0.0


def candidate_rows(index: SearchIndex, chunk_rows: list[int]) -> list[tuple[int, int]]:
    """(sentence row, rank of its best chunk) for the sentences of the given chunks."""
    seen: dict[int, int] = {}
    for rank, chunk in enumerate(chunk_rows):
        for row in index.chunk_sentences[chunk]:
            seen.setdefault(row, rank)
    return list(seen.items())


def score_sentences(
    index: SearchIndex, info: QuestionInfo, query_vector: np.ndarray, chunk_rows: list[int]
) -> list[ScoredSentence]:
    """Sentences of the retrieved chunks, best evidence first."""
    candidates = candidate_rows(index, chunk_rows)
    if not candidates:
        return []
    rows = [row for row, _ in candidates]
    dense = index.sentence_vectors[rows] @ query_vector
    scored = []
    for (row, rank), sim in zip(candidates, dense, strict=True):
        sentence = index.sentences[row]
        text = index.documents[sentence.doc].text[sentence.start : sentence.end]
        overlap = overlap_score(index, info.terms, text)
        date = index.documents[sentence.doc].date or ""
        year = (
            1.0
            if info.years and (date[:4] in info.years or any(y in text for y in info.years))
            else 0.0
        )
        score = (
            W_DENSE * float(sim)
            + W_OVERLAP * overlap
            + W_EXPECTED * _expected_bonus(info, text)
            + W_YEAR * year
            + W_RANK / (1 + rank)
        )
        scored.append(
            ScoredSentence(
                row,
                sentence.doc,
                sentence.start,
                sentence.end,
                text,
                float(sim),
                overlap,
                score,
                rank,
            )
        )
    scored.sort(key=lambda s: (-s.score, s.row))
    return scored
