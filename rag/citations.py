"""Citations and the answer object, shared by every answer mode and the HTTP API."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rag.index import SearchIndex

NOT_FOUND_ZH = "文中未提及。"
NOT_FOUND_EN = "The articles do not say."
NOT_ANSWERED_ZH = "文中没有直接回答这个问题。"
NOT_ANSWERED_EN = "The articles do not answer this directly."
# The three outcomes of a question: answered; related passages found but none answers;
# nothing relevant in the articles.
Outcome = Literal["answered", "related", "none"]
MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Citation:
    """A numbered pointer at exact words: ``documents[doc].text[start:end] == quote``."""

    id: int
    doc: str
    title: str
    quote: str
    start: int
    end: int
    page: int | None = None  # the page the quote starts on, for formats with pages (PDF)


@dataclass(frozen=True)
class ShortAnswer:
    """The few words that answer a factoid question: ``documents[doc].text[start:end] == text``.

    ``resolved`` restates a relative date ("今年6月") against the article's date ("2023年6月").
    """

    text: str
    doc: str
    start: int
    end: int
    score: float
    resolved: str | None = None


@dataclass
class Answer:
    """What every answer mode returns; ``[n]`` markers in ``answer`` match ``citations``."""

    question: str
    answer: str
    citations: list[Citation]
    answerable: bool
    mode: str
    route: str | None = None
    route_reason: str | None = None
    fallback_reason: str | None = None
    unsupported: list[str] = field(default_factory=list)
    faithfulness: float | None = None
    rewritten_question: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    short_answer: ShortAnswer | None = None
    outcome: Outcome = "answered"
    # Probability that the cited evidence answers the question (extractive answers).
    confidence: float | None = None
    # For "related": the nearest passages, shown as sources, not as the answer.
    related: list[Citation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return data


def make_citation(index: SearchIndex, number: int, doc: str, start: int, end: int) -> Citation:
    """Build a citation from offsets, taking the quote from the stored original text."""
    document = index.documents[doc]
    quote = document.text[start:end]
    return Citation(number, doc, document.title, quote, start, end, document.page_at(start))


def not_found(language: str) -> str:
    return NOT_FOUND_EN if language == "en" else NOT_FOUND_ZH


def not_answered(language: str) -> str:
    return NOT_ANSWERED_EN if language == "en" else NOT_ANSWERED_ZH


def check_answer(answer: Answer, index: SearchIndex) -> list[str]:
    """Problems with an answer's citations (empty when markers and quotes are all exact)."""
    problems = []
    ids = [c.id for c in answer.citations]
    markers = {int(m) for m in MARKER.findall(answer.answer)}
    if set(ids) != markers or len(ids) != len(set(ids)):
        problems.append(f"markers {sorted(markers)} do not match citations {ids}")
    for c in answer.citations:
        doc = index.documents.get(c.doc)
        if doc is None or doc.text[c.start : c.end] != c.quote:
            problems.append(f"citation [{c.id}] quote is not the source slice")
    return problems
