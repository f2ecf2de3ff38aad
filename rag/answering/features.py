"""Features of evidence sentences and of whole questions, in one place for training and serving.

The evidence ranker scores each candidate sentence (does it state the answer?), and the
answerability model scores the question given its best candidates (is the answer there at all?).
Both are trained by ``rag/answering/train_evidence.py`` from these exact functions, so the
features seen in training are the ones computed at answer time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import jieba.posseg
import numpy as np

from rag.evidence import W_OVERLAP, ScoredSentence, sentence_terms
from rag.index import SearchIndex
from rag.question import QuestionInfo
from rag.retrieval import Hit

# The kinds of answer a question may expect, as a categorical feature (order is the code).
KINDS = ("other", "number", "time", "place", "person", "list", "reason")

EVIDENCE_FEATURES = (
    "evidence_score",  # the hand-weighted score of rag/evidence.py (cosine + overlap + bonuses)
    "dense",  # cosine of question and sentence (e5)
    "dense_gap",  # best candidate's cosine minus this one's
    "dense_rank",  # rank of this sentence by cosine among the candidates
    "overlap",  # IDF-weighted share of the question's terms in the sentence
    "overlap_window",  # ... in the sentence with its neighbours (a pronoun subject's antecedent)
    "overlap_gap",  # best candidate's overlap minus this one's
    "char_cover",  # share of the question's characters (CJK, letters, digits) in the sentence
    "longest_common",  # longest common substring with the question, over the question's length
    "title_overlap",  # share of the question's terms in the article title
    "chunk_rank",  # rank of the best retrieved chunk holding the sentence
    "chunk_score_gap",  # retrieval score of the top chunk minus that of this sentence's chunk
    "expects",  # the kind of answer asked for (KINDS code)
    "gives_kind",  # the sentence holds a thing of that kind that the question does not
    "new_number",  # a number the question does not contain
    "new_time",  # a date or time expression the question does not contain
    "new_name",  # a person, organisation or other proper name the question does not contain
    "new_place",  # a place name the question does not contain
    "year_match",  # the article's date or the sentence matches a year the question names
    "numbers_missing",  # share of the question's numbers (years, figures) absent from the window
    "names_missing",  # share of the question's names (people, brands, terms) absent from it
    "measure_match",  # 1 the unit or money asked for follows a number; 0 absent; 0.5 not asked
    "appositive",  # characters of title/description right before a name the question asks about
    "length",  # characters
    "new_chars",  # share of the sentence's characters absent from the question
    "heading",  # no sentence-final punctuation: a title or heading line
    "pronoun_start",  # starts with a pronoun or demonstrative (its subject is elsewhere)
    "position",  # index of the sentence within its document's candidates (0 = first)
    "form_match",  # holds a new thing of the form asked (year, %, money, rank); 0.5 none asked
    "neighbour_lead",  # its term coverage minus the better of its neighbours' (answer vs context)
)

ANSWERABILITY_FEATURES = (
    "top_score",  # ranker score of the chosen sentence
    "top_evidence_score",
    "second_score",
    "score_gap",
    "top_dense",
    "max_dense",
    "dense_margin",  # chosen sentence's cosine minus the candidates' median: corpus-independent
    "evidence_margin",  # the same for the hand-weighted evidence score
    "top_overlap",
    "top_overlap_window",
    "top_char_cover",
    "top_longest_common",
    "top_gives_kind",
    "top_numbers_missing",
    "top_names_missing",
    "top_measure_match",
    "top_new_chars",
    "expects",
    "question_terms",  # content terms in the question
    "known_terms",  # share of them that occur anywhere in the corpus
    "unknown_names",  # proper names of the question absent from the corpus
    "english",
    "top_hit_score",  # retrieval score of the best passage
    "span_score",  # short-answer model's best span probability in the chosen sentence
    "top_form_match",
    "form_in_top",  # share of the top candidates holding a new thing of the form asked
    "best_window_overlap",  # best term coverage of any top candidate with its neighbours
    "top_neighbour_lead",
)
TOP_CANDIDATES = 5

_CJK_OR_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[A-Za-z]+|[0-9]+")
_NUMBER = re.compile(
    r"[0-9]+(?:[.,][0-9]+)*|[零一二三四五六七八九十百千万亿两]+(?:分之|成|倍|个|款|家|年|月|日|号|%|万|亿)"
    r"|[零一二三四五六七八九十百千万亿两]{2,}"  # 六十二公里, 一百八十二克
)
# A question asking for an amount of money (not a cost ratio: "成本降到多少" wants 十分之一).
PRICE_CUE = re.compile(r"售价|价格|多少钱|营收|收入|利润|估值|融资|花了多少|price|revenue")
_TIME = re.compile(
    r"[0-9]{2,4}\s*年|[0-9]{1,2}\s*月|[0-9]{1,2}\s*[日号]|[一二三四五六七八九十]+\s*月"
    r"|[今去明前]年|上半年|下半年|年初|年底|年末|世纪|朝|时期|期间"
)
# A year a question names ("2023年4月"): the near misses change it, the selector checks it.
YEAR_ASKED = re.compile(r"(?<![0-9])(1[5-9][0-9]{2}|20[0-9]{2})(?=\s*年)")
_QUESTION_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# The unit a "how many" question asks in: 多少公里, 几座, 多少亿元.
_ASKED_UNIT = re.compile(r"(?:多少|几)([^\s是的呢吗了?？,，。、和与]{1,2})")
_GENERIC_UNITS = frozenset("个种次项件")
_MONEY_CUE = re.compile(r"价|钱|费用|成本|收入|营收|利润|资金|投资|融资|估值|price|cost|revenue")
_MONEY = re.compile(
    r"[0-9零一二三四五六七八九十百千万亿两半]\s*(?:元|块|毛|角|美元|美金|港元|欧元|英镑|日元)|[¥$￥]"
)
_PRONOUN_START = re.compile(r"^[“\"「]?(?:他|她|它|他们|她们|它们|该|其|此|这|那|本|上述|以上)")
_END_PUNCT = tuple('。！？!?；;…”"」)）')
NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "nt", "nz", "eng"})
PLACE_TAGS = frozenset({"ns"})
# A word this common in general Chinese (jieba's dictionary counts) is not a specific name.
RARE_WORD = 500


@lru_cache(maxsize=65536)
def tag_words(text: str) -> tuple[tuple[str, str], ...]:
    """jieba's (word, part of speech) pairs, cached: questions and candidate sentences recur."""
    return tuple((w, t) for w, t in jieba.posseg.lcut(text))


def _chars(text: str) -> list[str]:
    return [m.group().lower() for m in _CJK_OR_WORD.finditer(text)]


def longest_common(a: str, b: str) -> int:
    """Length of the longest common substring of ``a`` (short: a question) and ``b``.

    Grows a match from each start in ``a`` with substring tests, which run in C: far faster
    than a character-by-character table for a question against a sentence.
    """
    best = 0
    for i in range(len(a)):
        j = i + best + 1
        while j <= len(a) and a[i:j] in b:
            best = j - i
            j += 1
    return best


def _numbers_missing(question: str, text: str) -> float:
    numbers = set(_QUESTION_NUMBER.findall(question))
    if not numbers:
        return 0.0
    return sum(n not in text for n in numbers) / len(numbers)


def _is_proper_name(word: str, tag: str) -> bool:
    """A person, organisation, brand or other proper noun jieba tags as such, and not a common
    word (its dictionary count is low), or a Latin-script term."""
    if len(word) < 2 or not tag.startswith(("nr", "nz", "nt", "eng")):
        return False
    return tag == "eng" or jieba.dt.FREQ.get(word, 0) < RARE_WORD


@lru_cache(maxsize=4096)
def question_names(question: str) -> tuple[str, ...]:
    """The specific names a question is about: proper nouns, Latin terms, and words jieba's
    dictionary does not know (new product names such as 磐久)."""
    names = []
    for word, tag in tag_words(question):
        if len(word) < 2:
            continue
        freq = jieba.dt.FREQ.get(word, 0)
        if _is_proper_name(word, tag) or (
            freq == 0 and _CJK_OR_WORD.match(word) and not word.isdigit()
        ):
            names.append(word.lower())
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=4096)
def subject_names(question: str) -> tuple[str, ...]:
    """The proper names a question is about (people, organisations, brands, products), lower
    case: :func:`question_names` without the words jieba merely does not know (营收, 哪款)."""
    names = (word.lower() for word, tag in tag_words(question) if _is_proper_name(word, tag))
    return tuple(dict.fromkeys(names))


def _names_missing(question: str, window: str) -> float:
    names = question_names(question)
    if not names:
        return 0.0
    lowered = window.lower()
    return sum(n not in lowered for n in names) / len(names)


def kind_code(info: QuestionInfo) -> int:
    return KINDS.index(info.expects) if info.expects in KINDS else 0


def _new_things(question: str, text: str) -> tuple[bool, bool, bool, bool]:
    """(number, time, name, place) present in ``text`` but not in ``question``."""
    number = any(m.group() not in question for m in _NUMBER.finditer(text))
    time = any(re.sub(r"\s", "", m.group()) not in question for m in _TIME.finditer(text))
    name = place = False
    for word, tag in tag_words(text):
        if len(word) < 2 or word in question:
            continue
        if tag in NAME_TAGS and (tag in ("nt", "eng") or jieba.dt.FREQ.get(word, 0) < RARE_WORD):
            name = True
        elif tag in PLACE_TAGS:
            place = True
    return number, time, name, place


def states_money(text: str) -> bool:
    return bool(_MONEY.search(text))


def _measure_match(question: str, text: str) -> float:
    """Does a number in ``text`` carry the unit (or currency) the question asks for?"""
    unit = _ASKED_UNIT.search(question)
    asked = unit.group(1) if unit and unit.group(1)[0] not in _GENERIC_UNITS else None
    money = bool(_MONEY_CUE.search(question.lower()))
    if not asked and not money:
        return 0.5
    if money and _MONEY.search(text):
        return 1.0
    if asked and re.search(
        rf"[0-9零一二三四五六七八九十百千万亿两半]\s*{re.escape(asked[0])}", text
    ):
        return 1.0
    return 0.0


_NUM = r"[0-9〇零一二三四五六七八九十百千万亿两半几]"
# What a sentence must hold for each answer form the span layer reads from the wording.
_FORMS: dict[str, re.Pattern[str]] = {
    "year": re.compile(r"[0-9]{2,4}\s?年|[〇零一二三四五六七八九]{2,4}年"),
    "date": _TIME,
    "money": _MONEY,
    "percent": re.compile(r"[%‰]|百分之|分之"),
    "rank": re.compile(rf"第\s?{_NUM}+|首位|冠军|亚军|季军|榜首|之最"),
    "age": re.compile(rf"{_NUM}+\s?岁"),
    "duration": re.compile(rf"{_NUM}+\s?(?:年|个月|天|日|小时|分钟|周|星期|世纪)"),
    "count": re.compile(rf"{_NUM}"),
}


def form_match(question: str, text: str) -> float:
    """1 when ``text`` holds a thing of the form the question's wording asks for that the
    question does not already contain ("占多少" → a percentage, "第几" → a rank), 0 when it
    holds none, 0.5 when the wording asks for no particular form."""
    from rag.answering.span import asked_form

    asks, unit = asked_form(question)
    pattern = _FORMS.get(asks)
    if pattern is None:
        return 0.5
    if asks == "count" and unit:
        pattern = re.compile(rf"{_NUM}\s?{re.escape(unit[0])}")
    return float(any(m.group() not in question for m in pattern.finditer(text)))


def _appositive(question: str, text: str) -> float:
    """Length of the noun phrase right before a name from the question ("…集团CEO张勇").

    jieba often splits an unknown name (仓|剑), so a name is a proper-noun token whose first
    two characters in the sentence also stand in the question.
    """
    words = tag_words(text)
    best = 0
    offset = 0
    for i, (word, tag) in enumerate(words):
        start, offset = offset, offset + len(word)
        if not tag.startswith(("nr", "nt", "nz", "eng")) or text[start : start + 2] not in question:
            continue
        if len(text[start : start + 2]) < 2:
            continue
        length = 0
        for prev, prev_tag in reversed(words[:i]):
            if not prev_tag.startswith(("n", "eng", "j", "b")) and prev not in ("、", "兼", "和"):
                break
            length += len(prev)
        best = max(best, length)
    return float(min(best, 30))


def _gives_kind(kind: str, new: tuple[bool, bool, bool, bool]) -> bool:
    number, time, name, place = new
    return {
        "number": number,
        "time": time,
        "person": name,
        "place": place or name,
    }.get(kind, number or time or name or place)


def _coverage(index: SearchIndex, terms: Sequence[str], found: frozenset[str] | set[str]) -> float:
    weights = [index.lexical.idf(t) for t in terms]
    total = sum(weights)
    if not total:
        return 0.0
    return sum(w for t, w in zip(terms, weights, strict=True) if t in found) / total


@dataclass(frozen=True)
class Candidate:
    """A sentence competing as evidence, with the feature row the ranker scores."""

    sentence: ScoredSentence
    features: tuple[float, ...]

    def feature(self, name: str) -> float:
        return self.features[EVIDENCE_FEATURES.index(name)]


# What the lexical features read when a question shares no words with the sentence, as an
# English question asked of Chinese articles does: training copies some questions with these
# values so the models also learn to judge by meaning alone.
NO_LEXICAL_MATCH = {
    "overlap": 0.0,
    "overlap_window": 0.0,
    "overlap_gap": 0.0,
    "char_cover": 0.0,
    "longest_common": 0.0,
    "title_overlap": 0.0,
    "new_chars": 1.0,
    "measure_match": 0.5,
    "appositive": 0.0,
}


def without_lexical_match(candidate: Candidate) -> Candidate:
    """The candidate as a question in another language would see it (see NO_LEXICAL_MATCH)."""
    values = list(candidate.features)
    overlap = values[EVIDENCE_FEATURES.index("overlap")]
    for name, value in NO_LEXICAL_MATCH.items():
        values[EVIDENCE_FEATURES.index(name)] = value
    values[EVIDENCE_FEATURES.index("evidence_score")] -= W_OVERLAP * overlap
    return Candidate(candidate.sentence, tuple(values))


# Lexical features a paraphrase weakens (see ``with_damped_lexical_match``).
DAMPED = (
    "overlap",
    "overlap_window",
    "overlap_gap",
    "char_cover",
    "longest_common",
    "title_overlap",
)


def with_damped_lexical_match(candidate: Candidate, factor: float) -> Candidate:
    """The candidate as a paraphrase of its question would see it: the shared-word features
    scaled by ``factor`` (between 0, no shared word, and 1, as asked)."""
    values = list(candidate.features)
    overlap = values[EVIDENCE_FEATURES.index("overlap")]
    for name in DAMPED:
        values[EVIDENCE_FEATURES.index(name)] *= factor
    i = EVIDENCE_FEATURES.index("new_chars")
    values[i] = 1.0 - (1.0 - values[i]) * factor
    values[EVIDENCE_FEATURES.index("evidence_score")] -= W_OVERLAP * overlap * (1.0 - factor)
    return Candidate(candidate.sentence, tuple(values))


def neighbour_rows(index: SearchIndex, s: ScoredSentence) -> list[int]:
    """The rows of the sentences before and after ``s`` in its document (within the index)."""
    return [
        row
        for row in (s.row - 1, s.row + 1)
        if 0 <= row < len(index.sentences) and index.sentences[row].doc == s.doc
    ]


def evidence_candidates(
    index: SearchIndex, info: QuestionInfo, scored: Sequence[ScoredSentence], hits: Sequence[Hit]
) -> list[Candidate]:
    """Feature rows for the candidate sentences (``scored``, from the retrieved chunks)."""
    if not scored:
        return []
    question = info.text
    q_chars = set(_chars(question))
    terms = list(info.terms)
    best_dense = max(s.dense for s in scored)
    best_overlap = max(s.overlap for s in scored)
    dense_order = {s.row: r for r, s in enumerate(sorted(scored, key=lambda s: (-s.dense, s.row)))}
    hit_scores = [h.score for h in hits]
    top_hit = hit_scores[0] if hit_scores else 0.0
    kind = kind_code(info)
    first_row: dict[str, int] = {}
    for s in sorted(scored, key=lambda s: s.row):
        first_row.setdefault(s.doc, s.row)
    rows = []
    neighbour_cover: dict[int, float] = {}
    for s in scored:
        text = s.text
        chars = _chars(text)
        around = neighbour_rows(index, s)
        window_text = "".join([text, *(index.sentence_text(row) for row in around)])
        window_terms = sentence_terms(window_text)
        for row in around:  # neighbours recur: a candidate's neighbour is often a candidate
            if row not in neighbour_cover:
                found = sentence_terms(index.sentence_text(row))
                neighbour_cover[row] = _coverage(index, terms, found)
        # s.overlap is this sentence's own coverage of the question's terms
        lead = s.overlap - max((neighbour_cover[row] for row in around), default=0.0)
        title = index.documents[s.doc].title
        new = _new_things(question, text)
        date = index.documents[s.doc].date or ""
        year = bool(info.years) and (date[:4] in info.years or any(y in text for y in info.years))
        chunk_score = hit_scores[s.chunk_rank] if s.chunk_rank < len(hit_scores) else 0.0
        features = (
            s.score,
            s.dense,
            best_dense - s.dense,
            float(dense_order[s.row]),
            s.overlap,
            _coverage(index, terms, window_terms),
            best_overlap - s.overlap,
            (sum(c in set(chars) for c in q_chars) / len(q_chars)) if q_chars else 0.0,
            longest_common(question, text) / max(1, len(question)),
            _coverage(index, terms, sentence_terms(title)),
            float(s.chunk_rank),
            top_hit - chunk_score,
            float(kind),
            float(_gives_kind(info.expects, new)),
            float(new[0]),
            float(new[1]),
            float(new[2]),
            float(new[3]),
            float(year),
            _numbers_missing(question, window_text),
            _names_missing(question, window_text),
            _measure_match(question, text),
            _appositive(question, text),
            float(len(text)),
            (sum(c not in q_chars for c in chars) / len(chars)) if chars else 0.0,
            float(not text.endswith(_END_PUNCT)),
            float(bool(_PRONOUN_START.match(text))),
            float(s.row - first_row[s.doc]),
            form_match(question, text),
            lead,
        )
        rows.append(Candidate(s, features))
    return rows


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def answerability_row(
    index: SearchIndex,
    info: QuestionInfo,
    ranked: Sequence[tuple[Candidate, float]],
    hits: Sequence[Hit],
    unknown_names: int,
    span_score: float,
) -> tuple[float, ...]:
    """One feature row per question: how well its best candidates answer it."""
    terms = [t for t in info.terms if len(t) > 1] or list(info.terms)
    known = [t for t in terms if index.lexical.document_frequency(t) > 0]
    top, top_score = ranked[0] if ranked else (None, -10.0)
    second = ranked[1][1] if len(ranked) > 1 else top_score - 10.0

    def f(name: str) -> float:
        return top.feature(name) if top is not None else 0.0

    leaders = [c for c, _ in ranked[:TOP_CANDIDATES]]
    return (
        top_score,
        f("evidence_score"),
        second,
        top_score - second,
        f("dense"),
        max((c.feature("dense") for c, _ in ranked), default=0.0),
        f("dense") - _median([c.feature("dense") for c, _ in ranked]),
        f("evidence_score") - _median([c.feature("evidence_score") for c, _ in ranked]),
        f("overlap"),
        f("overlap_window"),
        f("char_cover"),
        f("longest_common"),
        f("gives_kind"),
        f("numbers_missing"),
        f("names_missing"),
        f("measure_match"),
        f("new_chars"),
        float(kind_code(info)),
        float(len(terms)),
        len(known) / len(terms) if terms else 0.0,
        float(unknown_names),
        float(info.language == "en"),
        hits[0].score if hits else 0.0,
        span_score,
        f("form_match"),
        float(np.mean([c.feature("form_match") for c in leaders])) if leaders else 0.0,
        max((c.feature("overlap_window") for c in leaders), default=0.0),
        f("neighbour_lead"),
    )
