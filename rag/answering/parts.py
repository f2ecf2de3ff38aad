"""A question of several parts ("A是什么?B又是什么?") judged part by part.

The whole question's top sentence answers one part at most, so the judge's probability for it
runs low whatever the articles hold. Each part is therefore also judged as the question it is,
with the threshold of its own kind, and ranked with its own words. When the whole question is
not judged answered but some part is, the answer quotes evidence for those parts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.answering.selector import Assessment, assess
from rag.evidence import ScoredSentence
from rag.index import SearchIndex
from rag.question import QuestionInfo, analyse, sub_questions
from rag.retrieval import Hit


@dataclass(frozen=True)
class Judged:
    """The outcome for the whole question and the ranked evidence of each part to quote."""

    assessment: Assessment
    parts: list[list[ScoredSentence]]  # per part; only the answered ones when judged by part


def judge(
    index: SearchIndex,
    info: QuestionInfo,
    scored: Sequence[ScoredSentence],
    pool: Sequence[Hit],
    per_part: Sequence[Sequence[ScoredSentence]] = (),
    *,
    second_look: bool = True,
) -> Judged:
    """``per_part`` holds each sub-question's scored sentences, in ``sub_questions`` order.

    The question is answered when it is as a whole or when any part is; "nothing relevant"
    for the whole question (no words, a name the articles never mention, off-topic) stands.
    """
    whole = assess(index, info, scored, pool, second_look=second_look)
    if len(per_part) < 2 or whole.outcome == "none":
        return Judged(whole, [])
    texts = sub_questions(info.text)
    parts = [
        assess(index, analyse(text), part, pool, second_look=False)
        for text, part in zip(texts, per_part, strict=True)
    ]
    answered = [p for p in parts if p.outcome == "answered"]
    if whole.outcome == "answered" or not answered:
        # Every part is quoted: a part that reads as unanswered alone often leans on another
        # ("…叫什么?它最初是为什么设计的?").
        return Judged(whole, [p.sentences for p in parts if p.ranked])
    best = max(p.probability for p in answered)
    return Judged(
        replace(whole, outcome="answered", reason=None, probability=best),
        [p.sentences for p in answered],
    )
