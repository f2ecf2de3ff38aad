"""Score evidence with the shipped models: rank the candidate sentences, then judge whether the
best of them answers the question at all.

The models are LightGBM text files in ``models/``; ``models/answer_layer.json`` holds the
feature lists they were trained on, the answerability threshold chosen on validation, and the
figures that choice gave.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import jieba.posseg
import numpy as np

from rag.answering import rerank
from rag.answering.cross.check import Verdict, load_check
from rag.answering.features import (
    ANSWERABILITY_FEATURES,
    EVIDENCE_FEATURES,
    PRICE_CUE,
    RARE_WORD,
    YEAR_ASKED,
    Candidate,
    answerability_row,
    evidence_candidates,
    longest_common,
    neighbour_rows,
    states_money,
    subject_names,
    tag_words,
)
from rag.evidence import ScoredSentence
from rag.index import SearchIndex
from rag.question import QuestionInfo
from rag.retrieval import Hit

MODELS_DIR = Path(__file__).parent / "models"
EVIDENCE_MODEL = "evidence.txt"
ANSWERABILITY_MODEL = "answerability.txt"
DENSE_ANSWERABILITY_MODEL = "answerability_dense.txt"  # only when the card's dense_mix > 0
RELEVANCE_MODEL = "relevance.txt"
RERANK_MODEL = "rerank.txt"  # only when the card's rerank_top > 0 (see rerank.py)
CARD = "answer_layer.json"

_WORDISH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[A-Za-z]{2,}|[0-9]")
ENTITY_TAGS = frozenset({"nr", "nrt", "nrfg", "nz", "eng"})


# "张勇是谁?", "仓剑是什么人?": the answer is a description of the person, which the sentence
# that states it puts right before the name ("…集团CEO张勇说"), while the sentences most similar
# to the question merely repeat the name ("张勇如是说").
_DEFINITION = re.compile(
    r"^\s*(\S{2,12}?)(?:到底|究竟)?(?:是谁|是什么人|是何人|是做什么的|是干什么的)\s*[?？]?\s*$"
)
DESCRIPTION_CHARS = 4


def definition_first(
    question: str, ranked: list[tuple[Candidate, float]]
) -> list[tuple[Candidate, float]]:
    """For a who-is question, the candidate with the longest title before the name goes first."""
    if not _DEFINITION.match(question) or not ranked:
        return ranked
    best = max(ranked, key=lambda pair: pair[0].feature("appositive"))
    if best[0].feature("appositive") < DESCRIPTION_CHARS or best is ranked[0]:
        return ranked
    return [best, *(pair for pair in ranked if pair is not best)]


# Questions whose answer must be of a kind a sentence visibly holds; the other kinds (person,
# list, reason, other) are left to the models.
CHECKED_KINDS = frozenset({"number", "time", "place"})
KIND_WINDOW = 5  # how deep in the ranking a sentence of the right kind or year is promoted from
SUBJECT_SHARE = 0.5


def kind_fits(
    info: QuestionInfo, ranked: list[tuple[Candidate, float]]
) -> Callable[[Candidate], bool] | None:
    """The test a candidate passes when it holds an answer of the kind asked for (a number, a
    date, a place, an amount of money the question does not itself contain); None when the
    question's kind is not checked."""
    if info.expects not in CHECKED_KINDS or info.language != "zh" or not ranked:
        return None
    money = info.expects == "number" and bool(PRICE_CUE.search(info.text.lower()))

    # A promoted sentence must still be about the question's subject, not just any sentence
    # with a number: it (with its neighbours) keeps half of the top sentence's term overlap.
    floor = SUBJECT_SHARE * ranked[0][0].feature("overlap_window")

    def fits(c: Candidate) -> bool:
        if c.feature("overlap_window") < floor:
            return False
        if money:
            return states_money(c.sentence.text)
        return c.feature("gives_kind") > 0

    return fits


def kind_first(
    info: QuestionInfo, ranked: list[tuple[Candidate, float]]
) -> tuple[list[tuple[Candidate, float]], str | None]:
    """Put first the best-ranked candidate holding an answer of the kind asked for; when none
    of the top candidates holds one, say so: the passages are related but do not answer."""
    fits = kind_fits(info, ranked)
    if fits is None:
        return ranked, None
    promoted = promote_first(ranked, fits)
    if promoted is None:
        money = info.expects == "number" and bool(PRICE_CUE.search(info.text.lower()))
        kind = "amount of money" if money else info.expects
        return ranked, f"no passage states the {kind} asked for"
    return promoted, None


def promote_first(
    ranked: list[tuple[Candidate, float]], fits: Callable[[Candidate], bool]
) -> list[tuple[Candidate, float]] | None:
    """``ranked`` with the best of its first ``KIND_WINDOW`` candidates that ``fits`` moved to
    the front; None when none of them fits."""
    pick = next((pair for pair in ranked[:KIND_WINDOW] if fits(pair[0])), None)
    if pick is None:
        return None
    if pick is ranked[0]:
        return ranked
    return [pick, *(pair for pair in ranked if pair is not pick)]


def _window(index: SearchIndex, c: Candidate) -> str:
    """The candidate's sentence with its neighbours (a pronoun subject's antecedent)."""
    s = c.sentence
    near = [index.sentences[r] for r in neighbour_rows(index, s)]
    start = min([s.start, *(n.start for n in near)])
    end = max([s.end, *(n.end for n in near)])
    return index.documents[s.doc].text[start:end]


def _context(index: SearchIndex, c: Candidate) -> str:
    """The candidate's window with its article's title and date, lower case: what a rule may
    read to see what the sentence is about."""
    doc = index.documents[c.sentence.doc]
    return (_window(index, c) + doc.title + (doc.date or "")).lower()


# "2023年4月": a question naming a month of a year.
_MONTH_ASKED = re.compile(r"(?<![0-9])(1[5-9][0-9]{2}|20[0-9]{2})\s*年\s*([01]?[0-9])\s*月")


def _states_year(
    index: SearchIndex, c: Candidate, years: Sequence[str], months: Sequence[tuple[str, int]] = ()
) -> bool:
    """Whether the candidate, its neighbours or its article's title and date name every year,
    and every month asked with its year (in the text, or as the month of the article's date:
    a news report is about its own month). A sentence that names years of its own is about
    those, whatever its neighbours say ("2024年,产能达到…" answers nothing about 2023)."""
    s = c.sentence
    own = set(YEAR_ASKED.findall(s.text))
    if own and not own.intersection(years):
        return False
    doc = index.documents[s.doc]
    window = _window(index, c)
    date = doc.date or ""
    context = window + doc.title + date
    if not all(y in context for y in years):
        return False
    return all(
        date.startswith(f"{year}-{month:02d}")
        or re.search(rf"(?<![0-9])0?{month}\s*月", window + doc.title)
        for year, month in months
    )


def year_first(
    index: SearchIndex,
    info: QuestionInfo,
    ranked: list[tuple[Candidate, float]],
    also: Callable[[Candidate], bool] | None = None,
) -> tuple[list[tuple[Candidate, float]], str | None]:
    """A question about one year ("2023年4月…") is answered from a passage of that year: the
    best candidate whose sentence, neighbours or article date give it goes first; when none of
    the top ones does, the passages are related but do not answer (a near miss: the articles
    give 2024's figure, the question asks for 2023's). A month named with the year must match
    too. ``also`` is a test the promoted candidate must pass as well (``kind_fits``: a number
    question about 2023 needs a sentence of 2023 that states a number, not the year's sentence
    that states none)."""
    years = list(dict.fromkeys(YEAR_ASKED.findall(info.text)))
    if not years or info.parts > 1 or info.multi or info.language != "zh" or not ranked:
        return ranked, None
    months = [(y, int(m)) for y, m in _MONTH_ASKED.findall(info.text) if 1 <= int(m) <= 12]
    promoted = promote_first(
        ranked, lambda c: _states_year(index, c, years, months) and (also is None or also(c))
    )
    if promoted is None:
        when = [f"{y}年{m}月" for y, m in months] or years
        return ranked, f"no passage is about {'/'.join(when)}"
    return promoted, None


# A name counts as stated when this share of it (and at least two characters) stands in the
# passage unbroken: jieba glues a character onto names (由|威廉 → 由威廉, 明|仁天皇) and
# questions shorten them (联合国安理会 for 联合国安全理事会), while a different company or person
# shares little (阿里巴巴 / 亚马逊, 刘德华 / 张学友).
NAME_SHARE = 0.6


def names_missing(names: Sequence[str], context: str) -> list[str]:
    """The ``names`` that ``context`` (lower case) does not state; see NAME_SHARE."""
    return [n for n in names if longest_common(n, context) < max(2, math.ceil(NAME_SHARE * len(n)))]


def subject_first(
    index: SearchIndex, info: QuestionInfo, ranked: list[tuple[Candidate, float]]
) -> tuple[list[tuple[Candidate, float]], str | None]:
    """A question naming a person, company or product ("2024年上半年阿里巴巴的资本支出…") is
    answered from a passage about it: the best candidate whose sentence, neighbours or article
    title name each such name goes first; when none of the top ones does, the passages are
    related but do not answer (a near miss: the sentence gives the figure for Microsoft and
    Amazon, and the article names Alibaba only elsewhere).

    A promoted sentence must keep half of the top one's term overlap, as in ``kind_first``: a
    sentence that merely names the company ("阿里巴巴集团CEO张勇说") is not about the question."""
    names = subject_names(info.text)
    if not names or info.parts > 1 or info.multi or info.language != "zh" or not ranked:
        return ranked, None
    floor = SUBJECT_SHARE * ranked[0][0].feature("overlap_window")

    def fits(c: Candidate) -> bool:
        return c.feature("overlap_window") >= floor and not names_missing(names, _context(index, c))

    promoted = promote_first(ranked, fits)
    if promoted is None:
        missing = names_missing(names, _context(index, ranked[0][0])) or names
        return ranked, f"no passage is about {'/'.join(missing)}"
    return promoted, None


def has_words(text: str) -> bool:
    """False for input with no word at all: punctuation, emoji, zero-width characters."""
    return bool(_WORDISH.search(text))


def unknown_names(info: QuestionInfo, index: SearchIndex) -> list[str]:
    """Specific names in the question (people, brands, terms) found nowhere in the corpus."""
    found = []
    words = tag_words(info.text) if info.language == "zh" else ()
    for word, tag in words:
        word = word.strip()
        if tag not in ENTITY_TAGS or len(word) < 2:
            continue
        if tag != "eng" and jieba.dt.FREQ.get(word, 0) >= RARE_WORD:
            continue
        if not index.mentions(word):
            found.append(word)
    return found


# The answerability model is calibrated differently per kind of answer: on questions asking for
# a number, a date, a place or a person the evidence either holds a thing of that kind or does
# not, while on the rest ("什么", "哪些") its scores run low for paraphrased questions whatever
# the answer. A threshold per kind, each chosen for false abstention <= 5% on its own questions,
# lets the first say "not found" where the second must stay lenient. A question of several
# parts is its own group: its top sentence answers one part at most, whatever the kind.
THRESHOLD_GROUPS = ("number", "time", "place", "person", "other", "multi")


def threshold_group(info: QuestionInfo) -> str:
    if info.parts > 1 or info.multi:
        return "multi"
    if _DEFINITION.match(info.text):  # "张勇是谁?" asks for a description, not a name
        return "other"
    return info.expects if info.expects in THRESHOLD_GROUPS else "other"


def blended_order(
    scores: np.ndarray, matrix: np.ndarray, blend: float, rows: Sequence[int]
) -> list[int]:
    """Candidate order by the ranker's score plus ``blend`` times the hand-weighted evidence
    score, both standardised within the question.

    The ranker alone beats that score on reading-comprehension questions but loses to it on
    paraphrased news questions; the blend (chosen on both validation sets, see the card) keeps
    what transfers from each.
    """
    evidence = matrix[:, EVIDENCE_FEATURES.index("evidence_score")]
    total = rerank.blended(scores, evidence, blend)
    return sorted(range(len(scores)), key=lambda i: (-total[i], rows[i]))


class Models:
    """The evidence ranker and the answerability classifier, loaded once."""

    def __init__(self, directory: Path = MODELS_DIR) -> None:
        import lightgbm

        self.card: dict[str, Any] = json.loads((directory / CARD).read_text(encoding="utf-8"))
        if (
            tuple(self.card["evidence_features"]) != EVIDENCE_FEATURES
            or tuple(self.card["answerability_features"]) != ANSWERABILITY_FEATURES
        ):
            raise ValueError(f"{directory / CARD}: features differ from this code; retrain")
        self.ranker = lightgbm.Booster(model_file=str(directory / EVIDENCE_MODEL))
        self.judge = lightgbm.Booster(model_file=str(directory / ANSWERABILITY_MODEL))
        # A second judge on the e5 scores alone, mixed in: they survive paraphrase.
        self.dense_mix = float(self.card.get("dense_mix", 0.0))
        self.dense_judge = (
            lightgbm.Booster(model_file=str(directory / DENSE_ANSWERABILITY_MODEL))
            if self.dense_mix > 0
            else None
        )
        self.relevance = lightgbm.Booster(model_file=str(directory / RELEVANCE_MODEL))
        # One answerability threshold per answer kind (see ``threshold_group``).
        self.thresholds = {k: float(v) for k, v in self.card["thresholds"].items()}
        self.related_threshold = float(self.card["related_threshold"])
        self.related_threshold_en = float(self.card["related_threshold_english"])
        self.uses_span = bool(self.card.get("span_feature", False))
        self.blend = float(self.card.get("blend", 0.0))
        # The second look at the top few with the span model (rerank.py); none in older cards.
        self.rerank_top = int(self.card.get("rerank_top", 0))
        self.reranker = (
            lightgbm.Booster(model_file=str(directory / RERANK_MODEL)) if self.rerank_top else None
        )
        self.directory = directory

    @cached_property
    def cross(self) -> SecondLook | None:
        """The cross-encoder's second look at close calls and doubtful answers
        (cross/check.py), loaded when first asked for; None without one."""
        return load_check(self.directory)

    def threshold(self, info: QuestionInfo) -> float:
        """The answerability threshold for the kind of answer ``info`` asks for."""
        return self.thresholds[threshold_group(info)]

    def rank(self, candidates: Sequence[Candidate]) -> list[tuple[Candidate, float]]:
        """Candidates best first, each with its ranker score; the order blends the ranker
        with the hand-weighted evidence score (see :func:`blended_order`)."""
        if not candidates:
            return []
        matrix = np.array([c.features for c in candidates], dtype=np.float64)
        scores = np.asarray(self.ranker.predict(matrix), dtype=np.float64)
        order = blended_order(scores, matrix, self.blend, [c.sentence.row for c in candidates])
        return [(candidates[i], float(scores[i])) for i in order]

    def rerank(
        self, info: QuestionInfo, index: SearchIndex, ranked: list[tuple[Candidate, float]]
    ) -> list[tuple[Candidate, float]]:
        """``ranked`` with its first few reordered by the span model's confidence in each
        (unchanged without a reranker, or for a question it does not apply to)."""
        if self.reranker is None:
            return ranked
        rows = rerank.rerank_rows(
            info,
            ranked,
            self.blend,
            self.rerank_top,
            lambda c: span_probability(info, index, c.sentence),
        )
        if rows is None:
            return ranked
        return rerank.reordered(ranked, np.asarray(self.reranker.predict(rows)))

    def probability(self, row: Sequence[float]) -> float:
        """Probability that the top-ranked sentence answers the question."""
        x = np.array([row], dtype=np.float64)
        p = float(np.asarray(self.judge.predict(x))[0])
        if self.dense_judge is None:
            return p
        dense = float(np.asarray(self.dense_judge.predict(x))[0])
        return (1 - self.dense_mix) * p + self.dense_mix * dense

    def relevant(self, row: Sequence[float]) -> float:
        """Probability that the question is about something the articles cover at all."""
        return float(np.asarray(self.relevance.predict(np.array([row], dtype=np.float64)))[0])


class SecondLook(Protocol):
    """Reorders the first few of an answered question's candidates and may find that none
    answers (``CrossCheck``; the tuning script passes a recorder)."""

    def look(
        self,
        question: str,
        ranked: list[tuple[Candidate, float]],
        text: Callable[[Candidate], str],
        probability: float,
    ) -> Verdict[Candidate]: ...


def _sentence_text(c: Candidate) -> str:
    return c.sentence.text


@lru_cache(maxsize=1)
def load_models() -> Models:
    return Models()


@dataclass
class Assessment:
    """What the answer layer knows about a question before writing the answer."""

    ranked: list[tuple[Candidate, float]]
    probability: float
    unknown: list[str]
    reason: str | None  # why the question is not answered (None when it is)
    outcome: str  # "answered", "related" or "none"

    @property
    def sentences(self) -> list[ScoredSentence]:
        """The candidates best first, each carrying its ranker score as ``score``."""
        return [replace(c.sentence, score=score) for c, score in self.ranked]


def span_probability(info: QuestionInfo, index: SearchIndex, s: ScoredSentence) -> float:
    """The short-answer model's confidence in its best span of ``s`` (0 without that model)."""
    try:
        from rag.answering.span import span_score
    except ImportError:  # the span model is optional for the evidence layer
        return 0.0
    doc = index.documents[s.doc]
    return float(span_score(info.text, doc.text, s.start, s.end))


# Cite the runner-up instead when the short-answer model is much surer of an answer in it
# than in the top sentence: by more than SWAP_MARGIN plus SWAP_SCORE_WEIGHT times the ranker's
# lead. Chosen on the training corpus (bench numbers in models/README.md): on QA validation
# it moves top-1 sentence accuracy of answered factoid questions from 0.803 to 0.818.
SWAP_MARGIN = 0.1
SWAP_SCORE_WEIGHT = 1.0


def span_second(
    info: QuestionInfo, index: SearchIndex, ranked: list[tuple[Candidate, float]], top_span: float
) -> list[tuple[Candidate, float]]:
    """``ranked`` with its first two swapped when the second holds a far likelier answer span.

    Applied after the answerability decision, so the judge sees the order it was trained on.
    """
    if len(ranked) < 2:
        return ranked
    (_, s1), (second, s2) = ranked[0], ranked[1]
    runner_up = span_probability(info, index, second.sentence)
    if runner_up - top_span > SWAP_MARGIN + SWAP_SCORE_WEIGHT * (s1 - s2):
        return [ranked[1], ranked[0], *ranked[2:]]
    return ranked


def assess(
    index: SearchIndex,
    info: QuestionInfo,
    scored: Sequence[ScoredSentence],
    hits: Sequence[Hit],
    models: Models | None = None,
    *,
    second_look: bool = True,
) -> Assessment:
    """Rank the evidence and decide among the three outcomes.

    ``second_look`` False keeps the cross-encoder out: a deployment may turn it off
    (``RAG_SECOND_LOOK``), and a part of a question of several parts is judged on its own
    words but was never what the encoder's settings were chosen on.
    """
    models = models or load_models()
    if not has_words(info.text):
        return Assessment([], 0.0, [], "the question has no words", "none")
    candidates = evidence_candidates(index, info, scored, hits)
    ranked = definition_first(info.text, models.rerank(info, index, models.rank(candidates)))
    if not ranked:
        return Assessment(ranked, 0.0, [], "nothing retrieved", "none")
    unknown = unknown_names(info, index)
    if unknown:  # a question about something the articles never name cannot be answered here
        reason = f"the articles never mention {', '.join(unknown)}"
        return Assessment(ranked, 0.0, unknown, reason, "none")
    reordered = ranked
    fits_kind = kind_fits(info, ranked)
    ranked, missing_kind = kind_first(info, ranked)
    reordered = ranked if ranked[0] is reordered[0] else []  # promoted by a rule: keep it
    span = 0.0
    if models.uses_span and info.language == "zh":
        span = span_probability(info, index, ranked[0][0].sentence)
    row = answerability_row(index, info, ranked, hits, len(unknown), span)
    cut = models.related_threshold if info.language == "zh" else models.related_threshold_en
    relevant = models.relevant(row) >= cut
    if info.language != "zh":
        # No English question was ever trained on, and English wording never overlaps the
        # Chinese text, so the answerability model only sees its absence: an English question
        # is answered whenever the articles are about it at all.
        probability = models.probability(row)
        if relevant:
            return Assessment(ranked, probability, unknown, None, "answered")
        return Assessment(
            ranked, probability, unknown, "nothing in the articles is about this", "none"
        )
    probability = models.probability(row)
    # A question about someone or something the top passage names is about the articles, even
    # when its wording is far from theirs: the converse of ``unknown_names``.
    names = subject_names(info.text)
    if not relevant and names and not names_missing(names, _context(index, ranked[0][0])):
        relevant = True
    if not relevant:
        reason = "nothing in the articles is about this"
        return Assessment(ranked, probability, unknown, reason, "none")
    if missing_kind:
        return Assessment(ranked, probability, unknown, missing_kind, "related")
    # After the judge, like span_second: the judge scores the order it was trained on.
    judged = ranked[0]
    ranked, missing_year = year_first(index, info, ranked, fits_kind)
    if missing_year:
        return Assessment(ranked, probability, unknown, missing_year, "related")
    ranked, missing_subject = subject_first(index, info, ranked)
    if missing_subject:
        return Assessment(ranked, probability, unknown, missing_subject, "related")
    if ranked[0] is not judged:  # promoted for its year or subject: span_second keeps it
        reordered = []
    threshold = models.threshold(info)
    if probability >= threshold:
        # The reranker has weighed the span model's view of the top few where it applies.
        checked = models.reranker is not None and rerank.applies(info)
        if reordered and span and not _DEFINITION.match(info.text) and not checked:
            ranked = span_second(info, index, ranked, span)
        # Close calls and doubtful answers get the cross-encoder's second look where it was
        # trained and tuned: a one-part Chinese question asking for a few words, not a reason.
        # An order set by a rule (a kind, year or subject the question needs, a definition)
        # stands. When nothing it reads answers, the question is related but not answered.
        look = models.cross if second_look and rerank.applies(info) else None
        if look is not None and reordered and not _DEFINITION.match(info.text):
            verdict = look.look(info.text, ranked, _sentence_text, probability)
            ranked = verdict.ranked
            if not verdict.answers:
                reason = "no sentence read with the question answers it"
                return Assessment(ranked, probability, unknown, reason, "related")
        return Assessment(ranked, probability, unknown, None, "answered")
    reason = f"answerability {probability:.2f} < {threshold:.2f}"
    return Assessment(ranked, probability, unknown, reason, "related")
