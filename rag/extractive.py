"""Extractive answers: pick the evidence sentences, quote them, cite each one.

Nothing is generated, so every word of the answer is a verbatim quote; the work is in
choosing one sentence per part of the question and in knowing when to say "not found".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rag.answering.about import answer_about
from rag.answering.selector import Assessment
from rag.citations import (
    Answer,
    Citation,
    ShortAnswer,
    make_citation,
    not_answered,
    not_found,
)
from rag.evidence import ScoredSentence, sentence_terms
from rag.index import SearchIndex
from rag.question import QuestionInfo

# Another sentence joins the answer only if the ranker gives it at least this share of the
# best sentence's weight (softmax over the candidates)...
JOIN_SHARE = 0.5
# ...and it adds at least this share of the question's IDF weight not yet covered.
MIN_GAIN = 0.15
MAX_SENTENCES = 3
# Sources offered with "the articles do not answer this directly".
RELATED_SOURCES = 3


@dataclass(frozen=True)
class Selection:
    """The chosen sentences, or the reason for abstaining."""

    sentences: list[ScoredSentence]
    abstain_reason: str | None = None


def _gain(index: SearchIndex, info: QuestionInfo, covered: set[str], s: ScoredSentence) -> float:
    total = sum(index.lexical.idf(t) for t in info.terms) or 1.0
    new = sentence_terms(s.text) & (set(info.terms) - covered)
    return sum(index.lexical.idf(t) for t in new) / total


def _overlaps(a: ScoredSentence, b: ScoredSentence) -> bool:
    return a.doc == b.doc and a.start < b.end and b.start < a.end


def _by_year(
    info: QuestionInfo, index: SearchIndex, scored: list[ScoredSentence]
) -> list[ScoredSentence]:
    """One sentence per year the question names: from the article dated that year, or
    failing that, a sentence that mentions the year."""
    chosen: list[ScoredSentence] = []
    for year in dict.fromkeys(info.years):
        free = [s for s in scored if not any(_overlaps(s, c) for c in chosen)]
        dated = [s for s in free if (index.documents[s.doc].date or "").startswith(year)]
        candidates = dated or [s for s in free if year in s.text]
        if candidates:
            chosen.append(candidates[0])
    return chosen


EACH_ARTICLE = ("两篇", "两文", "两则", "各篇", "both articles", "each article", "the two articles")


def _by_document(scored: list[ScoredSentence]) -> list[ScoredSentence]:
    """The best sentence of each of the two best-matching articles ("两篇文章分别...")."""
    chosen: list[ScoredSentence] = []
    for s in scored:
        if s.doc not in {c.doc for c in chosen}:
            chosen.append(s)
        if len(chosen) == 2:
            break
    return chosen


def _by_part(per_part: list[list[ScoredSentence]]) -> list[ScoredSentence]:
    """The best sentence for each sub-question, skipping ones already chosen."""
    chosen: list[ScoredSentence] = []
    for ranked in per_part[:MAX_SENTENCES]:
        pick = next((s for s in ranked if not any(_overlaps(s, c) for c in chosen)), None)
        if pick is not None:
            chosen.append(pick)
    return chosen


def _weights(scored: list[ScoredSentence]) -> list[float]:
    """Softmax of the ranker scores: how much of the evidence mass each sentence holds."""
    top = max(s.score for s in scored)
    exp = [math.exp(s.score - top) for s in scored]
    total = sum(exp)
    return [e / total for e in exp]


def select_evidence(
    info: QuestionInfo,
    index: SearchIndex,
    scored: list[ScoredSentence],
    per_part: list[list[ScoredSentence]] | None = None,
) -> Selection:
    """Choose 1-3 sentences that answer the question's parts.

    ``scored`` is ranked by the evidence model, best first, and the question has already been
    judged answerable: this only decides how many sentences the answer quotes.
    """
    if not scored:
        return Selection([], "nothing retrieved")
    best = scored[0]
    wanted = min(MAX_SENTENCES, info.parts + (1 if info.expects in ("list", "reason") else 0))
    if len(set(info.years)) > 1:
        chosen = _by_year(info, index, scored)
        if len(chosen) >= 2:
            return Selection(chosen)
    if per_part:
        chosen = _by_part(per_part)
        if len(chosen) >= 2:
            return Selection(chosen)
    if any(cue in info.text.lower() for cue in EACH_ARTICLE):
        chosen = _by_document(scored)
        if len(chosen) == 2:
            return Selection(chosen)
    chosen = [best]
    covered = set(sentence_terms(best.text)) & set(info.terms)
    weights = _weights(scored)
    for cand, weight in zip(scored[1:], weights[1:], strict=True):
        if len(chosen) >= wanted or weight < JOIN_SHARE * weights[0]:
            break
        if any(_overlaps(cand, c) for c in chosen):
            continue
        new_doc = info.multi and cand.doc not in {c.doc for c in chosen}
        if _gain(index, info, covered, cand) >= MIN_GAIN or new_doc:
            chosen.append(cand)
            covered |= set(sentence_terms(cand.text)) & set(info.terms)
    return Selection(chosen)


def compose(
    info: QuestionInfo, index: SearchIndex, selection: Selection
) -> tuple[str, list[Citation]]:
    """Answer text with one ``[n]`` after each quoted sentence, and the matching citations."""
    if not selection.sentences:
        return not_found(info.language), []
    citations = [
        make_citation(index, n, s.doc, s.start, s.end) for n, s in enumerate(selection.sentences, 1)
    ]
    joiner = " " if info.language == "en" else ""
    body = joiner.join(f"{c.quote}[{c.id}]" for c in citations)
    if info.language == "en":
        body = f"The articles say (quoted in Chinese): {body}"
    return body, citations


def _short_answer(info: QuestionInfo, index: SearchIndex, s: ScoredSentence) -> ShortAnswer | None:
    """The span of the chosen sentence that answers a factoid question, when one is sure."""
    try:
        from rag.answering.span import is_factoid, short_answer
    except ImportError:  # the short-answer model is optional
        return None
    # The span model learned from Chinese questions on Chinese text; an English question's
    # words never line up with the Chinese sentence, so its spans are guesses.
    if info.language != "zh" or not is_factoid(info.text):
        return None
    doc = index.documents[s.doc]
    previous = s.row - 1
    context = None
    if previous >= 0 and index.sentences[previous].doc == s.doc:
        context = index.sentences[previous].start
    return short_answer(
        info.text, doc.text, s.start, s.end, doc=s.doc, date=doc.date, context_start=context
    )


def _related(index: SearchIndex, sentences: list[ScoredSentence]) -> list[Citation]:
    """The nearest evidence, offered as sources when it does not answer the question."""
    chosen: list[ScoredSentence] = []
    for s in sentences:
        if not any(_overlaps(s, c) for c in chosen):
            chosen.append(s)
        if len(chosen) == RELATED_SOURCES:
            break
    return [make_citation(index, n, s.doc, s.start, s.end) for n, s in enumerate(chosen, 1)]


def _about_articles(info: QuestionInfo, index: SearchIndex) -> Answer | None:
    """Questions about the articles themselves (author, date, source, title): cite the
    header line that states it, with its value as the short answer."""
    hits = answer_about(info.text, index)
    if hits is None:
        return None
    if not hits:
        return Answer(
            question=info.text,
            answer=not_found(info.language),
            citations=[],
            answerable=False,
            mode="extractive",
            outcome="none",
            unsupported=["the articles' headers do not state this"],
        )
    lines: list[tuple[str, int, int]] = []
    for hit in hits:
        line = (hit.doc, hit.field.line_start, hit.field.line_end)
        if line not in lines:
            lines.append(line)
    citations = [make_citation(index, n, *line) for n, line in enumerate(lines, 1)]
    first = hits[0]
    short = ShortAnswer(first.field.value, first.doc, first.field.start, first.field.end, 1.0)
    joiner = " " if info.language == "en" else ""
    text = joiner.join(f"{c.quote}[{c.id}]" for c in citations)
    return Answer(
        question=info.text,
        answer=text,
        citations=citations,
        answerable=True,
        mode="extractive",
        outcome="answered",
        confidence=1.0,
        faithfulness=1.0,
        short_answer=short if len(hits) == 1 else None,
    )


def answer_by_extraction(
    index: SearchIndex,
    info: QuestionInfo,
    assessment: Assessment,
    per_part: list[list[ScoredSentence]] | None = None,
) -> Answer:
    """The extractive answer: one of three outcomes, as the answer-layer models judged it.

    ``per_part``: for a question of several parts, each answered part's ranked evidence
    (``rag.answering.parts``)."""
    about = _about_articles(info, index)
    if about is not None:
        return about
    confidence = round(assessment.probability, 4)
    if assessment.outcome != "answered":
        related = assessment.outcome == "related"
        return Answer(
            question=info.text,
            answer=not_answered(info.language) if related else not_found(info.language),
            citations=[],
            answerable=False,
            mode="extractive",
            outcome="related" if related else "none",
            confidence=confidence,
            related=_related(index, assessment.sentences) if related else [],
            unsupported=[assessment.reason] if assessment.reason else [],
        )
    selection = select_evidence(info, index, assessment.sentences, per_part)
    text, citations = compose(info, index, selection)
    short = _short_answer(info, index, selection.sentences[0]) if selection.sentences else None
    return Answer(
        question=info.text,
        answer=text,
        citations=citations,
        answerable=bool(citations),
        mode="extractive",
        outcome="answered" if citations else "none",
        confidence=confidence,
        faithfulness=1.0 if citations else None,
        short_answer=short,
    )
