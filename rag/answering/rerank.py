"""Second look at the ranker's top few sentences with the short-answer model's confidence.

The ranker scores every candidate from cheap features; whether a sentence holds a thing that
fills the question's gap is what the span model judges, and at ~6 ms a sentence it is too dear
for all thirty candidates. A small LightGBM lambdarank (trained by
``rag/answering/train_evidence.py``, variant ``+rerank``) reorders the first ``top`` of them from
their place in the ranker's order and the span model's confidence in each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag.answering.features import Candidate
from rag.question import QuestionInfo

RERANK_FEATURES = (
    "total",  # the ranker's order score: its score plus the blend, standardised (all candidates)
    "rank",  # place in that order (0 = first)
    "gap",  # first candidate's order score minus this one's
    "span",  # the span model's probability for its best span in the sentence
    "span_gap",  # best span probability among the reranked candidates minus this one's
    "span_rank",  # how many of them hold a likelier span
    "expects",  # the kind of answer asked for (features.KINDS code)
)


def applies(info: QuestionInfo) -> bool:
    """A one-part Chinese question asking for a few words: the span model reads only Chinese
    and finds short answers, not reasons ("有哪些原因?" names its wh-word but wants a clause),
    and a question of several parts cites one sentence per part, chosen elsewhere."""
    return info.language == "zh" and info.parts == 1 and not info.multi and info.expects != "reason"


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9)


def blended(scores: np.ndarray, evidence: np.ndarray, blend: float) -> np.ndarray:
    """The ranker's scores plus ``blend`` times the hand-weighted evidence scores, both
    standardised within the question (a single candidate keeps its score)."""
    if len(scores) < 2:
        return scores
    return _standard(scores) + blend * _standard(evidence)


def order_totals(ranked: Sequence[tuple[Candidate, float]], blend: float) -> np.ndarray:
    """The score each candidate was ordered by (``selector.blended_order``)."""
    scores = np.array([s for _, s in ranked], dtype=np.float64)
    evidence = np.array([c.feature("evidence_score") for c, _ in ranked], dtype=np.float64)
    return blended(scores, evidence, blend)


def rerank_rows(
    info: QuestionInfo,
    ranked: Sequence[tuple[Candidate, float]],
    blend: float,
    top: int,
    span: Callable[[Candidate], float],
) -> np.ndarray | None:
    """Feature rows of the first ``top`` candidates, or None when there is nothing to reorder
    (fewer than two candidates, a question the check does not apply to, or no span at all)."""
    if len(ranked) < 2 or not applies(info):
        return None
    head = list(ranked[:top])
    spans = np.array([span(c) for c, _ in head], dtype=np.float64)
    if not spans.any():
        return None
    totals = order_totals(ranked, blend)
    kind = head[0][0].feature("expects")
    return np.array(
        [
            [
                totals[r],
                float(r),
                totals[0] - totals[r],
                spans[r],
                spans.max() - spans[r],
                float((spans > spans[r]).sum()),
                kind,
            ]
            for r in range(len(head))
        ],
        dtype=np.float64,
    )


def reordered(ranked: list[Any], scores: np.ndarray) -> list[Any]:
    """``ranked`` with its first ``len(scores)`` entries sorted by ``scores`` (ties keep order)."""
    head = sorted(range(len(scores)), key=lambda r: (-scores[r], r))
    return [ranked[r] for r in head] + ranked[len(scores) :]
