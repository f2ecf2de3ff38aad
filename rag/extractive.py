"""Extractive answers: pick the evidence sentences, quote them, cite each one.

Nothing is generated, so every word of the answer is a verbatim quote; the work is in
choosing one sentence per part of the question and in knowing when to say "not found".
"""

from __future__ import annotations

from dataclasses import dataclass

import jieba.posseg

from rag.citations import Citation, make_citation, not_found
from rag.evidence import ScoredSentence, sentence_terms
from rag.index import SearchIndex
from rag.question import QuestionInfo

# Below this evidence score the best sentence is too weak to answer with (calibrated on the
# dev set by bench/calibrate_abstention.py: midway between the weakest answerable question's
# best score and the strongest unanswerable one's, where they separate).
ABSTAIN_BELOW = 0.80
# Another sentence joins the answer only if it scores within this margin of the best one.
JOIN_MARGIN = 0.08
# ...and adds at least this share of the question's IDF weight not yet covered.
MIN_GAIN = 0.15
MAX_SENTENCES = 3
# jieba part-of-speech tags for names of people, places, organisations and other proper nouns.
ENTITY_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "eng"})
GENERIC_PLACES = frozenset({"城市", "国家", "地区", "国内", "海外", "全球", "中国"})


@dataclass(frozen=True)
class Selection:
    """The chosen sentences, or the reason for abstaining."""

    sentences: list[ScoredSentence]
    abstain_reason: str | None = None


def unknown_entities(info: QuestionInfo, index: SearchIndex) -> list[str]:
    """Proper nouns in a Chinese question that occur nowhere in the corpus."""
    if info.language != "zh":
        return []
    found = []
    for word, tag in jieba.posseg.lcut(info.text):
        word = word.strip()
        if tag not in ENTITY_TAGS or len(word) < 2 or word in GENERIC_PLACES:
            continue
        lowered = word.lower()
        if not any(lowered in d.text.lower() for d in index.documents.values()):
            found.append(word)
    return found


def _gain(index: SearchIndex, info: QuestionInfo, covered: set[str], s: ScoredSentence) -> float:
    total = sum(index.lexical.idf(t) for t in info.terms) or 1.0
    new = sentence_terms(s.text) & (set(info.terms) - covered)
    return sum(index.lexical.idf(t) for t in new) / total


def _overlaps(a: ScoredSentence, b: ScoredSentence) -> bool:
    return a.doc == b.doc and a.start < b.end and b.start < a.end


def _by_year(
    info: QuestionInfo, index: SearchIndex, scored: list[ScoredSentence]
) -> list[ScoredSentence]:
    """One sentence per year the question names, from the article of that year when possible."""
    chosen: list[ScoredSentence] = []
    for year in dict.fromkeys(info.years):

        def matches(s: ScoredSentence, y: str = year) -> bool:
            date = index.documents[s.doc].date or ""
            return date.startswith(y) or y in s.text

        pick = next(
            (s for s in scored if matches(s) and not any(_overlaps(s, c) for c in chosen)), None
        )
        if pick is not None:
            chosen.append(pick)
    return chosen


def select_evidence(
    info: QuestionInfo, index: SearchIndex, scored: list[ScoredSentence]
) -> Selection:
    """Choose 1-3 sentences that answer the question's parts, or say why not to answer."""
    if not scored:
        return Selection([], "nothing retrieved")
    missing = unknown_entities(info, index)
    if missing:
        return Selection([], f"the articles never mention {', '.join(missing)}")
    best = scored[0]
    if best.score < ABSTAIN_BELOW:
        return Selection([], f"best evidence score {best.score:.3f} < {ABSTAIN_BELOW}")
    wanted = min(MAX_SENTENCES, info.parts + (1 if info.expects in ("list", "reason") else 0))
    if len(set(info.years)) > 1:
        chosen = _by_year(info, index, scored)
        if len(chosen) >= 2:
            return Selection(chosen)
    chosen = [best]
    covered = set(sentence_terms(best.text)) & set(info.terms)
    for cand in scored[1:]:
        if len(chosen) >= wanted or cand.score < best.score - JOIN_MARGIN:
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
