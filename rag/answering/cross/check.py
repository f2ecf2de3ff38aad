"""The second look: the cross-encoder re-reads the ranker's closest calls.

Reading a pair costs ~9 ms, so only questions whose first two candidates are within
``margin`` of each other in ranker score are re-read, and then only the first ``top``: their
ranker scores and cross-encoder logits, each standardised within the question, are added
(the logits times ``weight``) and the best goes first. The three numbers are chosen on one half
of the validation split by ``tune.py`` and kept in ``models/cross.json`` with the figures on the
other half.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag.answering.cross.encoder import MODELS_DIR, CrossEncoder, load_encoder

SETTINGS = "cross.json"
T = TypeVar("T")


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9)


def close_call(ranked: Sequence[tuple[object, float]], margin: float) -> bool:
    """Whether the ranker's first two candidates are near enough to be worth a second look."""
    return len(ranked) >= 2 and ranked[0][1] - ranked[1][1] < margin


def pick(scores: np.ndarray, logits: np.ndarray, weight: float) -> int:
    """Index of the candidate with the highest standardised score plus weighted logit."""
    return int(np.argmax(_standard(scores) + weight * _standard(logits)))


@dataclass(frozen=True)
class CrossCheck:
    encoder: CrossEncoder
    top: int
    weight: float
    margin: float

    def reorder(
        self, question: str, ranked: list[tuple[T, float]], text: Callable[[T], str]
    ) -> list[tuple[T, float]]:
        """``ranked`` with the cross-encoder's pick among the first ``top`` moved first (the
        rest keep their order); unchanged unless the first two are a close call."""
        if not close_call(ranked, self.margin):
            return ranked
        head = ranked[: self.top]
        logits = self.encoder.score(question, [text(c) for c, _ in head])
        best = pick(np.array([s for _, s in head]), logits, self.weight)
        if best == 0:
            return ranked
        return [ranked[best], *ranked[:best], *ranked[best + 1 :]]


@lru_cache(maxsize=1)
def load_check(directory: Path = MODELS_DIR) -> CrossCheck | None:
    """The shipped second look, or None when this build has no cross-encoder or settings."""
    settings = directory / SETTINGS
    encoder = load_encoder(directory)
    if encoder is None or not settings.exists():
        return None
    chosen = json.loads(settings.read_text(encoding="utf-8"))["chosen"]
    return CrossCheck(encoder, int(chosen["top"]), float(chosen["weight"]), float(chosen["margin"]))
