"""Extractive answers: pick the evidence sentences, quote them, cite each one.

Nothing is generated, so every word of the answer is a verbatim quote; the work is in
choosing one sentence per part of the question and in knowing when to say "not found".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jieba.posseg

from rag.citations import Citation, make_citation, not_found
from rag.evidence import ScoredSentence, sentence_terms
from rag.index import SearchIndex
from rag.question import QuestionInfo

# Below this evidence score the best sentence is too weak to answer with. Calibrated on the
# dev + held-out sets (bench/calibrate_abstention.py): just under the weakest answerable
# question's best score (0.82, an English question). Unanswerable questions about the
# articles' topics score as high as answerable ones with this small embedder, so the
# entity, answer-kind and vocabulary checks below do most of the abstaining.
ABSTAIN_BELOW = 0.80
# Another sentence joins the answer only if it scores within this margin of the best one.
JOIN_MARGIN = 0.08
# ...and adds at least this share of the question's IDF weight not yet covered.
MIN_GAIN = 0.15
MAX_SENTENCES = 3
# jieba part-of-speech tags for names of people, brands and other proper nouns, and the
# general-language frequency (jieba's dictionary) under which such a word is a specific name
# rather than a common word that jieba happens to tag as a noun ("聊天" is 560).
ENTITY_TAGS = frozenset({"nr", "nrt", "nrfg", "nz", "eng"})
RARE_WORD = 500
PLACE_TAGS = frozenset({"ns"})
GENERIC_PLACES = frozenset({"城市", "国家", "地区", "地方", "哪里"})
# How far below the best sentence a sentence of the expected kind (place, date) may score.
KIND_MARGIN = 0.15


@dataclass(frozen=True)
class Selection:
    """The chosen sentences, or the reason for abstaining."""

    sentences: list[ScoredSentence]
    abstain_reason: str | None = None


def _in_corpus(index: SearchIndex, word: str) -> bool:
    return word.lower() in index.lowered_text


def unknown_entities(info: QuestionInfo, index: SearchIndex) -> list[str]:
    """Specific names in a Chinese question (people, brands, terms) that occur nowhere in the
    corpus: a question about them cannot be answered from these articles."""
    if info.language != "zh":
        return []
    found = []
    for word, tag in jieba.posseg.lcut(info.text):
        word = word.strip()
        if tag not in ENTITY_TAGS or len(word) < 2:
            continue
        if tag != "eng" and jieba.dt.FREQ.get(word, 0) >= RARE_WORD:
            continue
        if not _in_corpus(index, word):
            found.append(word)
    return found


def off_topic(info: QuestionInfo, index: SearchIndex) -> bool:
    """No content word of a Chinese question occurs in the corpus at all."""
    terms = [t for t in info.terms if len(t) > 1]
    return info.language == "zh" and bool(terms) and not any(_in_corpus(index, t) for t in terms)


def gives_kind(info: QuestionInfo, text: str) -> bool:
    """Does the sentence hold an answer of the kind asked for (a place, a date)?"""
    if info.expects == "place":
        return any(
            tag in PLACE_TAGS and len(w) > 1 and w not in GENERIC_PLACES and w not in info.text
            for w, tag in jieba.posseg.lcut(text)
        )
    if info.expects == "time":
        dates = re.findall(r"\d+\s*[年月日号]|[一二三四五六七八九十]+\s*月", text)
        return any(re.sub(r"\s", "", d) not in info.text for d in dates)
    return True


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
        if pick is not None and pick.score >= ABSTAIN_BELOW:
            chosen.append(pick)
    return chosen


def select_evidence(
    info: QuestionInfo,
    index: SearchIndex,
    scored: list[ScoredSentence],
    per_part: list[list[ScoredSentence]] | None = None,
) -> Selection:
    """Choose 1-3 sentences that answer the question's parts, or say why not to answer."""
    if not scored:
        return Selection([], "nothing retrieved")
    missing = unknown_entities(info, index)
    if missing:
        return Selection([], f"the articles never mention {', '.join(missing)}")
    if off_topic(info, index):
        return Selection([], "no word of the question occurs in the articles")
    best = scored[0]
    if best.score < ABSTAIN_BELOW:
        return Selection([], f"best evidence score {best.score:.3f} < {ABSTAIN_BELOW}")
    if info.language == "zh" and not gives_kind(info, best.text):
        kind = next((s for s in scored if gives_kind(info, s.text)), None)
        if kind is None or kind.score < best.score - KIND_MARGIN:
            return Selection([], f"no passage states the {info.expects} asked for")
        best = kind
        scored = [kind, *(s for s in scored if s is not kind)]
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
        if len(chosen) == 2 and chosen[1].score >= best.score - 2 * JOIN_MARGIN:
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
