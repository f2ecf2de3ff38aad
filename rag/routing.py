"""Request-aware routing between the fast extractive path and the LLM.

Short factoid and numeric questions whose best evidence is one clear sentence are answered
by quoting it: exact and fast. Open, explanatory, comparative or multi-part questions, and
questions whose evidence is not one clear sentence, go to the LLM.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.evidence import ScoredSentence
from rag.question import QuestionInfo

OPEN_CUES = (
    "为什么",
    "为何",
    "如何",
    "怎么",
    "怎样",
    "解释",
    "分析",
    "比较",
    "区别",
    "异同",
    "影响",
    "意义",
    "总结",
    "概括",
    "介绍",
    "评价",
    "why",
    "how does",
    "how do",
    "explain",
    "compare",
    "difference",
    "summar",
    "describe",
    "impact",
)
# The best sentence must lead the runner-up by this much to count as "one clear sentence".
CLEAR_LEAD = 0.02
SHORT_QUESTION = 40


@dataclass(frozen=True)
class Route:
    mode: str  # "extractive" or "llm"
    reason: str


def route(info: QuestionInfo, scored: list[ScoredSentence]) -> Route:
    """Pick the answer mode from features of the question and of its evidence."""
    lowered = info.text.lower()
    if any(cue in lowered for cue in OPEN_CUES) or info.expects in ("reason", "list"):
        return Route("llm", f"open question (expects {info.expects})")
    if info.parts > 1 or info.multi:
        return Route("llm", f"multi-part question ({info.parts} parts)")
    if len(info.text) > SHORT_QUESTION * (3 if info.language == "en" else 1):
        return Route("llm", "long question")
    if len(scored) > 1 and scored[0].score - scored[1].score < CLEAR_LEAD:
        return Route("llm", "no single clear evidence sentence")
    return Route("extractive", f"short {info.expects} question with one clear evidence sentence")
