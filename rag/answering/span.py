"""Short answers: the few words of the evidence sentence that answer a factoid question.

Candidates are cut from the sentence (numbers with units, time expressions, jieba noun phrases,
token n-grams inside a clause); each is described by the features in ``FEATURES`` and scored
by the LightGBM model shipped in ``models/span.txt`` (trained by ``train_span.py`` on public
QA sets). Only a candidate whose probability clears the threshold chosen on the validation
side is returned: a missing short answer is fine, a wrong one is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date as Date
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jieba.posseg as pseg
import numpy as np

from rag.citations import ShortAnswer
from rag.question import EACH, sub_questions
from rag.tokens import _ensure_jieba, tokenize

MODEL_DIR = Path(__file__).resolve().parent / "models"
MAX_NGRAM = 7  # tokens; longer answers come from the noun-phrase merge
MAX_NP = 16
_YEAR_PART = r"^(?:[0-9]{2,4}|[〇零一二三四五六七八九]{2,4})\s?年"

# --- question analysis -------------------------------------------------------------------------

QTYPES = ("number", "time", "person", "place", "org", "what", "nonfactoid")
SPAN_TYPES = ("number", "time", "person", "place", "org", "latin", "noun", "other")
# Question kinds and the span kinds that can answer them.
_COMPATIBLE = {
    "number": {"number"},
    "time": {"time"},
    "person": {"person", "latin", "noun"},
    "place": {"place", "org", "noun"},
    "org": {"org", "noun", "latin", "place"},
    "what": {"noun", "latin", "org", "place", "person", "other"},
    "nonfactoid": set(),
}
# Checked in order: the first matching cue decides.
_QTYPE_CUES: list[tuple[str, tuple[str, ...]]] = [
    (
        "nonfactoid",
        ("为什么", "为何", "怎么", "怎样", "如何", "why", "how do", "how does", "how can"),
    ),
    (
        "time",
        (
            "何时",
            "哪一年",
            "哪年",
            "哪一天",
            "哪天",
            "哪个月",
            "几月",
            "几年",
            "几号",
            "什么时候",
            "什么时间",
            "多久",
            "多长时间",
            "哪个朝代",
            "哪一个朝代",
            "哪个时期",
            "when",
            "what year",
            "which year",
            "what date",
        ),
    ),
    (
        "number",
        (
            "多少",
            "几",
            "多大",
            "多长",
            "多高",
            "多远",
            "多重",
            "多深",
            "多快",
            "多宽",
            "比例",
            "百分之",
            "how many",
            "how much",
            "how long",
            "how large",
            "how big",
            "what percentage",
        ),
    ),
    ("person", ("谁", "哪位", "何人", "什么人", "哪个人", "哪一位", "who", "whom")),
    (
        "org",
        (
            "公司",
            "机构",
            "组织",
            "团队",
            "企业",
            "大学",
            "学校",
            "集团",
            "哪家",
            "哪所",
            "which company",
        ),
    ),
    (
        "place",
        (
            "哪里",
            "哪儿",
            "何地",
            "何处",
            "哪个国家",
            "哪国",
            "哪个城市",
            "哪座",
            "哪个省",
            "哪个地区",
            "哪一个国家",
            "where",
        ),
    ),
]
_WH = re.compile(
    r"为什么|为何|怎么样|怎样|怎么|如何|多少(?:个|人|次|年|元|种|位)?|多[久长大高远重深快宽]"
    r"|几[个位年月日天次种名岁]?|谁|什么|啥|何[时地处人种]?|哪(?:一|几)?[个位种座家所条部些年天国里儿次"
    r"支队项本首类样]?|\b(?:who|whom|whose|what|when|where|which|how many|how much|how long)\b",
    re.IGNORECASE,
)
_END_WH = re.compile(r"[是为叫][?？]?\s*$")  # "占士·邦的编号是?" asks without a wh-word
_Q_TRIM = " \t?？!！。.呢吗"


@dataclass(frozen=True)
class _Question:
    text: str
    qtype: str
    before: str  # question text before its wh-word
    after: str  # and after it
    wh_pos: float  # where the wh-word sits (0 start, 1 end)
    head: str  # the noun the wh-word asks about: 城市 in 哪个城市, 条约 in 什么条约
    asks: str  # the form of answer the wording asks for (ASKS)
    unit: str  # the measure word a "how many" question names: 公里 in 多少公里, 座 in 几座
    terms: tuple[str, ...]
    chars: frozenset[str]
    bigrams: frozenset[str]


def _qtype(question: str) -> str:
    lowered = question.lower()
    for kind, cues in _QTYPE_CUES:
        if any(cue in lowered for cue in cues):
            return kind
    return "what"


def is_factoid(question: str) -> bool:
    """Whether the question asks for a few words (who/what/when/where/how many), not a reason."""
    if _qtype(question) == "nonfactoid":
        return False
    return bool(_WH.search(question) or _END_WH.search(question))


def _bigrams(text: str) -> frozenset[str]:
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def _head(after: str) -> str:
    """The first word after the wh-word when it is a noun ("哪所大学" → 大学)."""
    for pair in pseg.cut(after[:8]):
        if pair.word.strip():
            return pair.word if pair.flag.startswith("n") and len(pair.word) <= 4 else ""
    return ""


# Finer than the question kind: the form the answer takes, from general wording cues, so the
# model can tell "最低多少钱" (an amount of money) from "占多少" (a share) and "排名第几" (a rank).
ASKS = ("any", "year", "date", "money", "percent", "rank", "count", "duration", "age")
_ASK_CUES: list[tuple[str, re.Pattern[str]]] = [
    ("rank", re.compile(r"第几|排名|名次|排第|排行|第多少")),
    (
        "percent",
        re.compile(r"百分之|百分比|比例|比率|比重|占[^，,。]{0,12}(?:多少|几)|份额|percent"),
    ),
    (
        "money",
        re.compile(
            r"多少钱|价格|售价|价钱|票价|费用|成本|多少元|多少美元|多少亿元|多少万元|资金|price|cost"
        ),
    ),
    ("age", re.compile(r"几岁|多少岁|年龄|多大年纪")),
    ("duration", re.compile(r"多久|多长时间|几年时间|多少年|how long")),
    ("year", re.compile(r"哪一年|哪年|何年|几年|什么年份|哪个年份|which year|what year")),
    ("date", re.compile(r"哪一天|哪天|几月|几号|何日|什么日期|哪个月|何时|什么时候|when")),
    ("count", re.compile(r"多少|几|how many|how much")),
]
SPAN_FORMS = ("other", "year", "date", "money", "percent", "rank", "measure", "number", "clause")
_FORM_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("percent", re.compile(r"[%‰]|百分之|分之|成$")),
    ("money", re.compile(r"[元¥$￥]|美元|美金|港元|欧元|英镑|日元|块钱|毛钱")),
    ("rank", re.compile(r"^第|名$|首位|冠军|亚军|季军")),
    ("year", re.compile(rf"{_YEAR_PART}$|^[0-9]{{4}}$")),
    ("date", re.compile(r"[0-9一二三四五六七八九十]\s?[月日号]|年\s?[0-9一二三四五六七八九十]")),
]
_UNIT_AFTER = re.compile(r"(?:多少|几)([^\s是的呢吗了?？,，。、和与个]{1,2})")
_NUMERAL = re.compile(r"[0-9〇零一二三四五六七八九十百千万亿两半几多余]")


@lru_cache(maxsize=4096)
def asked_form(question: str) -> tuple[str, str]:
    """The form of answer the wording asks for (``ASKS``) and the unit it names, if any."""
    q = _question(question)
    return q.asks, q.unit


def _asks(question: str) -> str:
    lowered = question.lower()
    return next((name for name, cue in _ASK_CUES if cue.search(lowered)), "any")


def _asked_unit(question: str) -> str:
    match = _UNIT_AFTER.search(question)
    return match.group(1) if match else ""


# The span forms that answer each asked form; the rest of the specific forms contradict it.
# One feature across every form lets the rare forms (money, rank: a few dozen training
# questions each) borrow what the common ones (year, count) teach.
_AGREES = {
    "year": {"year", "date"},
    "date": {"date", "year"},
    "money": {"money"},
    "percent": {"percent"},
    "rank": {"rank"},
    "count": {"measure", "number"},
    "duration": {"measure", "number", "date", "year"},
    "age": {"measure", "number"},
}
_SPECIFIC = frozenset({"year", "date", "money", "percent", "rank"})


def _agreement(asks: str, form: str) -> float:
    if asks == "any":
        return 0.0
    if form in _AGREES[asks]:
        return 1.0
    return -1.0 if form in _SPECIFIC else 0.0


def _form(text: str, stype: str, source: int) -> str:
    """The shape of a candidate answer, the counterpart of the question's ``asks``."""
    if source == 3:
        return "clause"
    for name, pattern in _FORM_PATTERNS:
        if pattern.search(text) and (name == "rank" or _NUMERAL.search(text)):
            return name
    if stype == "time":
        return "date"
    if _NUMERAL.search(text) and stype == "number":
        return "measure" if not text[-1].isdigit() else "number"
    return "other"


@lru_cache(maxsize=2048)
def _question(question: str) -> _Question:
    text = question.strip()
    match = _WH.search(text)
    if match:
        before, after, pos = text[: match.start()], text[match.end() :], match.start()
    else:
        before, after, pos = text.rstrip(_Q_TRIM), "", len(text)
    before = re.sub(r"^(?:请问|文中提及|文中提到)[，,]?", "", before)
    content = re.sub(r"[\s\W]", "", _WH.sub("", text))
    return _Question(
        text=text,
        qtype=_qtype(text),
        before=before.strip(),
        after=after.strip(_Q_TRIM),
        wh_pos=pos / max(len(text), 1),
        head=_head(after) if match else "",
        asks=_asks(text),
        unit="" if _asks(text) == "money" else _asked_unit(text),
        terms=tuple(dict.fromkeys(tokenize(text))),
        chars=frozenset(content),
        bigrams=_bigrams(content),
    )


# --- tokens and candidates ---------------------------------------------------------------------

_DAY = r"(?:[0-9]{1,2}|[一二三四五六七八九十]{1,3})"  # a month or day number
# Time expressions, with the single spaces some articles put around digits ("今年 6 月").
_TIME = re.compile(
    r"[0-9]{2,4}年代|[0-9]{1,2}世纪(?:[0-9]{2}年代)?"
    rf"|(?:[0-9]{{2,4}}|[〇零一二三四五六七八九]{{2,4}}|[今去明前后]|同)\s?年"
    rf"(?:\s?{_DAY}\s?月(?:份)?(?:\s?{_DAY}\s?[日号])?)?"
    rf"|(?:{_DAY}|本|上|下)\s?月\s?{_DAY}\s?[日号]"
    r"|(?:[0-9]{1,2}|本|上|下)\s?月(?:份)?|[0-9]{1,2}\s?[日号](?![0-9])"
)
_TERM = re.compile(
    r"[A-Za-z0-9]+(?:(?:[.\-_+·]|(?<=[0-9]),(?=[0-9]{3}(?![0-9])))[A-Za-z0-9]+)*(?:%|‰|(?<=[0-9])(?:万亿|[万亿千百]))?"
)
_CN_NUMBER = re.compile(
    r"[零〇一二三四五六七八九十百千万亿两半几]+(?:分之[零一二三四五六七八九十百千万]+"
    r"|毛钱|块钱|[成倍个只件名位人家所座条项种次岁元块角分米吨台架艘部款层届代]|公里|平方公里)"
)
_QUOTED = re.compile(r"[《「“『〈][^《》「」“”『』〈〉]{1,40}[》」”』〉]")
_NUMBER_SPAN = re.compile(r"[0-9]|[零〇一二三四五六七八九十百千万亿两半]+(?:分之|成|倍|毛|块|元)")
_MAJOR = set("，,。；;：:！!？?\n（）()")
_FUNCTION_TAGS = {"uj", "ul", "uz", "ug", "uv", "ud", "u", "p", "c", "y", "e", "o", "x", "w"}
_FUNCTION_WORDS = {
    "是",
    "有",
    "在",
    "为",
    "将",
    "被",
    "把",
    "和",
    "与",
    "及",
    "或",
    "等",
    "也",
    "就",
}
_JOINERS = {"和", "与", "、", "及", "兼", "·", "-"}
_NOUNISH = ("n", "eng", "m", "q", "t", "j", "nz", "nr", "ns", "nt")
POS_TAGS = (
    "n",
    "nr",
    "ns",
    "nt",
    "nz",
    "eng",
    "m",
    "q",
    "t",
    "v",
    "a",
    "d",
    "f",
    "p",
    "u",
    "c",
    "x",
    "r",
    "j",
    "other",
)


@dataclass(frozen=True)
class _Token:
    word: str
    tag: str
    start: int
    end: int


@dataclass(frozen=True)
class Candidate:
    start: int  # offsets into the sentence
    end: int
    first: int  # token indices, inclusive
    last: int
    source: int  # 0 n-gram, 1 noun phrase, 2 number/time pattern, 3 whole clause


def _pos(tag: str) -> str:
    if tag.startswith("nr"):
        return "nr"
    if tag in POS_TAGS:
        return tag
    if tag.startswith("u"):
        return "u"
    if tag[:1] in ("n", "v", "a", "d", "r"):
        return tag[:1]
    return "other"


@lru_cache(maxsize=4096)
def _tokens(sentence: str) -> tuple[_Token, ...]:
    """jieba POS tokens with offsets; time expressions and Latin/number terms are kept whole."""
    _ensure_jieba()
    tokens: list[_Token] = []

    def cut(lo: int, hi: int) -> None:
        pos = lo
        for pair in pseg.cut(sentence[lo:hi]):
            word, tag = pair.word, pair.flag
            if not word.isspace():
                tokens.append(_Token(word, tag, pos, pos + len(word)))
            pos += len(word)

    pos = 0
    spans = sorted(  # longest first where a time expression and a term start together
        [(m.start(), -m.end(), "t") for m in _TIME.finditer(sentence)]
        + [(m.start(), -m.end(), "term") for m in _TERM.finditer(sentence)]
    )
    for s, neg_end, kind in spans:
        e = -neg_end
        if s < pos:
            continue
        if pos < s:
            cut(pos, s)
        word = sentence[s:e]
        tag = kind if kind == "t" else ("m" if word[0].isdigit() else "eng")
        tokens.append(_Token(word, tag, s, e))
        pos = e
    if pos < len(sentence):
        cut(pos, len(sentence))
    return tuple(tokens)


def _edge_ok(token: _Token) -> bool:
    return (
        _pos(token.tag) not in _FUNCTION_TAGS
        and token.tag not in _FUNCTION_TAGS
        and token.word not in _FUNCTION_WORDS
        and not all(ch in _MAJOR or not ch.isalnum() for ch in token.word)
    )


@lru_cache(maxsize=4096)
def candidates(sentence: str) -> tuple[Candidate, ...]:
    """Every plausible answer span of ``sentence`` (offsets into it), without duplicates."""
    tokens = _tokens(sentence)
    found: dict[tuple[int, int], Candidate] = {}
    n = len(tokens)
    for i in range(n):
        if not _edge_ok(tokens[i]):
            continue
        for j in range(i, min(n, i + MAX_NGRAM)):
            if any(ch in _MAJOR for ch in tokens[j].word):
                break
            if _edge_ok(tokens[j]):
                found.setdefault(
                    (tokens[i].start, tokens[j].end),
                    Candidate(tokens[i].start, tokens[j].end, i, j, 0),
                )
    # Noun phrases: runs of noun-like tokens, names joined by 和/与/、.
    i = 0
    while i < n:
        if not _pos(tokens[i].tag).startswith(_NOUNISH) or not _edge_ok(tokens[i]):
            i += 1
            continue
        j = i
        while j + 1 < n and j - i < MAX_NP:
            nxt = tokens[j + 1]
            if _pos(nxt.tag).startswith(_NOUNISH) and _edge_ok(nxt):
                j += 1
            elif (
                nxt.word in _JOINERS and j + 2 < n and _pos(tokens[j + 2].tag).startswith(_NOUNISH)
            ):
                j += 2
            else:
                break
        key = (tokens[i].start, tokens[j].end)
        if key not in found:
            found[key] = Candidate(key[0], key[1], i, j, 1)
        i = j + 1
    starts = {t.start: k for k, t in enumerate(tokens)}
    ends = {t.end: k for k, t in enumerate(tokens)}

    def add(lo: int, hi: int, source: int) -> None:
        if (lo, hi) in found or hi <= lo:
            return
        first = starts.get(lo, _token_at(tokens, lo))
        last = ends.get(hi, _token_at(tokens, hi - 1))
        found[(lo, hi)] = Candidate(lo, hi, first, last, source)

    for pattern in (_CN_NUMBER, _TIME, _TERM, _QUOTED):
        for m in pattern.finditer(sentence):
            add(m.start(), m.end(), 2)
    # "哪一年" wants "1978年" out of "1978年5月1日": the year (and year-month) of a full date.
    for m in _TIME.finditer(sentence):
        for prefix in _DATE_PREFIXES:
            part = prefix.match(m.group())
            if part and part.end() < len(m.group()):
                add(m.start(), m.start() + part.end(), 2)
    # Description questions ("有什么特点?", "职务是什么?") are answered by a whole clause.
    for lo, hi in _clauses(sentence):
        add(lo, hi, 3)
    return tuple(found.values())


_DATE_PREFIXES = (re.compile(_YEAR_PART), re.compile(rf"{_YEAR_PART}\s?{_DAY}\s?月"))
_CLAUSE_BREAK = re.compile(r"[，,。；;！!？?\n]")
_EDGE_PUNCT = " \t“”\"'「」『』（）()：:、"


def _clauses(sentence: str) -> list[tuple[int, int]]:
    """Offsets of the sentence's clauses (between commas and stops), edges trimmed."""
    found = []
    lo = 0
    for m in [*_CLAUSE_BREAK.finditer(sentence), None]:
        hi = m.start() if m else len(sentence)
        a, b = lo, hi
        while a < b and sentence[a] in _EDGE_PUNCT:
            a += 1
        while b > a and sentence[b - 1] in _EDGE_PUNCT:
            b -= 1
        if b - a >= 2:
            found.append((a, b))
        lo = m.end() if m else hi
    return found


def _token_at(tokens: tuple[_Token, ...], offset: int) -> int:
    for k, t in enumerate(tokens):
        if t.start <= offset < t.end:
            return k
    return 0


# --- features ----------------------------------------------------------------------------------


def _span_type(sentence: str, tokens: tuple[_Token, ...], c: Candidate) -> str:
    text = sentence[c.start : c.end]
    tags = [_pos(t.tag) for t in tokens[c.first : c.last + 1]]
    if _TIME.fullmatch(text) or (all(t in ("t", "m") for t in tags) and "t" in tags):
        return "time"
    if _NUMBER_SPAN.search(text) and tags[0] == "m" and all(t in ("m", "q", "eng") for t in tags):
        return "number"
    if c.source == 2 and _NUMBER_SPAN.match(text):
        return "number"
    last = tags[-1] if tags else "other"
    if "nr" in tags:
        return "person"
    if last == "nt" or "nt" in tags:
        return "org"
    if last == "ns" or "ns" in tags:
        return "place"
    if all(t == "eng" for t in tags):
        return "latin"
    if last in ("n", "nz", "j", "eng", "q", "m"):
        return "noun"
    return "other"


def _common_suffix(a: str, b: str, cap: int = 20) -> int:
    k = 0
    while k < min(len(a), len(b), cap) and a[-1 - k] == b[-1 - k]:
        k += 1
    return k


def _common_prefix(a: str, b: str, cap: int = 20) -> int:
    k = 0
    while k < min(len(a), len(b), cap) and a[k] == b[k]:
        k += 1
    return k


_PUNCT = re.compile(r"[\s，,。、；;：:！!？?“”\"'《》「」()（）]")


def _strip_punct(text: str) -> str:
    return _PUNCT.sub("", text)


# Every feature, in model column order; ``_features`` fills them by name.
FEATURES: tuple[str, ...] = (
    "qtype",  # categorical: QTYPES index
    "span_type",  # categorical: SPAN_TYPES index
    "compatible",  # the span kind can answer the question kind
    "n_compatible",  # how many candidates in the sentence are compatible
    "source",  # 0 n-gram, 1 noun phrase, 2 number/time pattern
    "n_chars",
    "n_tokens",
    "first_pos",  # categorical: POS_TAGS index
    "last_pos",
    "prev_pos",
    "next_pos",
    "in_question",  # the whole span appears in the question
    "token_overlap",  # share of the span's tokens that occur in the question
    "char_overlap",  # share of its characters that occur in the question
    "left_match",  # chars: common suffix of question-before-wh and sentence-before-span
    "left_match_share",
    "right_match",  # chars: common prefix of question-after-wh and sentence-after-span
    "right_match_share",
    "right_skip",  # characters skipped (question wh phrase, sentence) to find that match
    "left_skip",  # sentence characters skipped before the left match
    "head_match",  # chars shared by the span's end and the noun of the wh phrase (哪所大学)
    "left_window",  # share of question bigrams in the 12 characters before the span
    "right_window",  # and after it
    "term_distance",  # characters to the nearest question term in the sentence
    "terms_left",  # question terms before the span / after it
    "terms_right",
    "sentence_coverage",  # share of question terms found anywhere in the sentence
    "position",  # span start / sentence length
    "clause_start",  # span begins a clause
    "clause_end",  # and ends one
    "after_copula",  # preceded by 是/为/叫/：
    "before_de",  # followed by 的
    "wh_position",  # where the wh-word sits in the question
    "has_joiner",  # contains 、/和/与
    "digit_share",
    "q_chars",
    "q_asks",  # categorical: ASKS index, the form of answer the question's wording asks for
    "span_form",  # categorical: SPAN_FORMS index, the candidate's form
    "unit_match",  # the unit a "多少X" question names ends the span or follows it (-1 none asked)
    "clause_share",  # the span's share of the clause it lies in
    "form_agrees",  # 1 the span's form is the one asked, -1 another specific form, 0 generic
    # Where the question's words sit around the span, by the side of the wh-word they come
    # from: the answer fills the wh-word's slot, so words before it should precede the span.
    "before_terms_left",  # share of the terms before the wh-word found left of the span
    "before_terms_right",  # ... found right of it (out of place)
    "after_terms_right",  # share of the terms after the wh-word found right of the span
    "after_terms_left",
    "clause_coverage",  # share of question terms in the span's clause, outside the span
    # The same scores against the sentence's best candidate: the model scores each candidate
    # alone, so these say how it compares with its rivals.
    "clause_coverage_gap",
    "left_match_gap",
    "right_match_gap",
    "window_gap",
    "term_distance_gap",
)
_INDEX = {name: k for k, name in enumerate(FEATURES)}
CATEGORICAL = (
    "qtype",
    "span_type",
    "first_pos",
    "last_pos",
    "prev_pos",
    "next_pos",
    "q_asks",
    "span_form",
)


def featurize(question: str, sentence: str) -> tuple[tuple[Candidate, ...], np.ndarray]:
    """Candidates of ``sentence`` and their feature matrix (rows in ``candidates`` order)."""
    q = _question(question)
    tokens = _tokens(sentence)
    cands = candidates(sentence)
    if not cands:
        return cands, np.zeros((0, len(FEATURES)))
    q_words = {t.word for t in _tokens(q.text)}
    n = len(sentence)
    term_spans = [
        (m.start(), m.end())
        for t in q.terms
        if len(t) > 1 or not t.isascii()
        for m in re.finditer(re.escape(t), sentence, re.IGNORECASE)
    ]
    # Per position: distance back to the nearest term end, forward to the nearest term start,
    # and term counts on each side; prefix sums of question-bigram hits for the windows.
    back, ahead = [99] * (n + 1), [99] * (n + 1)
    ends_before, starts_after = [0] * (n + 1), [0] * (n + 2)
    for ts, te in term_spans:
        ends_before[te] += 1
        starts_after[ts] += 1
    for i in range(1, n + 1):
        ends_before[i] += ends_before[i - 1]
    for i in range(n - 1, -1, -1):
        starts_after[i] += starts_after[i + 1]
    last = None
    for i in range(n + 1):
        if ends_before[i] and (i == 0 or ends_before[i] != ends_before[i - 1]):
            last = i
        back[i] = i - last if last is not None else 99
    nxt = None
    for i in range(n, -1, -1):
        if starts_after[i] != starts_after[i + 1]:
            nxt = i
        ahead[i] = nxt - i if nxt is not None else 99
    hits = [0] * (n + 1)
    for i in range(n - 1):
        hits[i + 1] = hits[i] + (sentence[i : i + 2] in q.bigrams)
    hits[n] = hits[n - 1] if n > 1 else 0
    clean_at = [0] * (n + 1)  # offset in the punctuation-free sentence
    kept: list[str] = []
    for i, ch in enumerate(sentence):
        clean_at[i] = len(kept)
        if not _PUNCT.fullmatch(ch):
            kept.append(ch)
    clean_at[n] = len(kept)
    clean = "".join(kept)
    coverage = (sum(1 for t in q.terms if t in sentence.lower()) / len(q.terms)) if q.terms else 0.0
    before_q, after_q = _strip_punct(q.before), _strip_punct(q.after)
    compat = _COMPATIBLE[q.qtype]
    pos_index = {tag: k for k, tag in enumerate(POS_TAGS)}
    types = [_span_type(sentence, tokens, c) for c in cands]
    n_compat = sum(1 for t in types if t in compat)
    n_bigrams = max(len(q.bigrams), 1)
    clause_of = [0] * (n + 1)  # length of the clause around each offset
    for lo, hi in _clauses(sentence) or [(0, n)]:
        for i in range(lo, hi + 1):
            clause_of[i] = hi - lo
    # Question terms found in the sentence, marked by the side of the wh-word they come from,
    # and grouped by the clause they fall in.
    side_terms = [t for t in q.terms if (len(t) > 1 or not t.isascii()) and not _WH.fullmatch(t)]
    before_set = {t for t in side_terms if t in q.before}
    n_before = len(before_set)
    n_after = len({t for t in side_terms if t not in before_set})
    side_spans = [
        (m.start(), m.end(), t in before_set, t)
        for t in dict.fromkeys(side_terms)
        for m in re.finditer(re.escape(t), sentence, re.IGNORECASE)
    ]
    clause_at = [0] * (n + 1)
    for brk in _CLAUSE_BREAK.finditer(sentence):
        for i in range(brk.end(), n + 1):
            clause_at[i] += 1
    clause_terms: dict[int, list[tuple[int, int, str]]] = {}
    for ts, te, _, t in side_spans:
        clause_terms.setdefault(clause_at[ts], []).append((ts, te, t))
    rows: list[list[float]] = []
    for c, stype in zip(cands, types, strict=True):
        text = sentence[c.start : c.end]
        span_tokens = tokens[c.first : c.last + 1]
        right_text = clean[clean_at[c.end] : clean_at[c.end] + 30]
        # A few characters of slack on either side: the wh phrase's noun ("哪个城市") in the
        # question, an extra verb character ("派遣" for "派") in the sentence.
        right, skip = 0, 0
        for k in range(min(4, len(after_q) + 1)):
            for j in (0, 1, 2):
                m = _common_prefix(after_q[k:], right_text[j:])
                if m > right:
                    right, skip = m, k + j
        left_text = clean[max(0, clean_at[c.start] - 30) : clean_at[c.start]]
        left, left_skip = 0, 0
        for j in (0, 1, 2):
            m = _common_suffix(before_q, left_text[: len(left_text) - j])
            if m > left:
                left, left_skip = m, j
        lo, hi = max(0, c.start - 12), min(n, c.end + 12)
        left_hits = hits[max(lo, c.start - 1)] - hits[lo]
        right_hits = hits[max(c.end, hi - 1)] - hits[c.end]
        dist = min(back[c.start], ahead[c.end])
        prev_char = sentence[c.start - 1] if c.start else ""
        row = [0.0] * len(FEATURES)
        rows.append(row)
        row[_INDEX["qtype"]] = QTYPES.index(q.qtype)
        row[_INDEX["span_type"]] = SPAN_TYPES.index(stype)
        row[_INDEX["compatible"]] = stype in compat
        row[_INDEX["n_compatible"]] = n_compat
        row[_INDEX["source"]] = c.source
        row[_INDEX["n_chars"]] = len(text)
        row[_INDEX["n_tokens"]] = c.last - c.first + 1
        row[_INDEX["first_pos"]] = pos_index[_pos(tokens[c.first].tag)]
        row[_INDEX["last_pos"]] = pos_index[_pos(tokens[c.last].tag)]
        row[_INDEX["prev_pos"]] = pos_index[_pos(tokens[c.first - 1].tag)] if c.first else -1
        row[_INDEX["next_pos"]] = (
            pos_index[_pos(tokens[c.last + 1].tag)] if c.last + 1 < len(tokens) else -1
        )
        row[_INDEX["in_question"]] = text in q.text
        row[_INDEX["token_overlap"]] = sum(t.word in q_words for t in span_tokens) / max(
            len(span_tokens), 1
        )
        row[_INDEX["char_overlap"]] = sum(ch in q.chars for ch in text) / len(text)
        row[_INDEX["left_match"]] = left
        row[_INDEX["left_match_share"]] = left / len(before_q) if before_q else -1
        row[_INDEX["right_match"]] = right
        row[_INDEX["right_match_share"]] = right / len(after_q) if after_q else -1
        row[_INDEX["right_skip"]] = skip
        row[_INDEX["left_skip"]] = left_skip
        row[_INDEX["head_match"]] = _common_suffix(text, q.head, 4) if q.head else -1
        row[_INDEX["left_window"]] = left_hits / n_bigrams
        row[_INDEX["right_window"]] = right_hits / n_bigrams
        row[_INDEX["term_distance"]] = dist
        row[_INDEX["terms_left"]] = ends_before[c.start]
        row[_INDEX["terms_right"]] = starts_after[c.end]
        row[_INDEX["sentence_coverage"]] = coverage
        row[_INDEX["position"]] = c.start / len(sentence)
        row[_INDEX["clause_start"]] = c.start == 0 or prev_char in _MAJOR
        row[_INDEX["clause_end"]] = c.end == len(sentence) or sentence[c.end] in _MAJOR
        row[_INDEX["after_copula"]] = prev_char in ("是", "为", "叫", "：", ":")
        row[_INDEX["before_de"]] = sentence[c.end : c.end + 1] == "的"
        row[_INDEX["wh_position"]] = q.wh_pos
        row[_INDEX["has_joiner"]] = any(t.word in ("、", "和", "与") for t in span_tokens)
        row[_INDEX["digit_share"]] = sum(ch.isdigit() for ch in text) / len(text)
        row[_INDEX["q_chars"]] = len(q.text)
        row[_INDEX["q_asks"]] = ASKS.index(q.asks)
        form = _form(text, stype, c.source)
        row[_INDEX["span_form"]] = SPAN_FORMS.index(form)
        row[_INDEX["form_agrees"]] = _agreement(q.asks, form)
        row[_INDEX["unit_match"]] = (
            -1 if not q.unit else float(text.endswith(q.unit) or sentence.startswith(q.unit, c.end))
        )
        row[_INDEX["clause_share"]] = len(text) / max(clause_of[c.start], len(text), 1)
        _slot_features(row, c, side_spans, n_before, n_after, clause_at, clause_terms)
    table = np.array(rows, dtype=np.float64)
    for gap, name, sign in _GAPS:
        col = table[:, _INDEX[name]]
        best = col.max() if sign > 0 else col.min()
        table[:, _INDEX[gap]] = sign * (col - best)
    return cands, table


# (gap column, source column, +1 higher is better / -1 lower is better); the window gap uses
# the sum of the two windows, filled into ``window_gap`` first.
_GAPS = (
    ("clause_coverage_gap", "clause_coverage", 1),
    ("left_match_gap", "left_match", 1),
    ("right_match_gap", "right_match", 1),
    ("window_gap", "window_gap", 1),
    ("term_distance_gap", "term_distance", -1),
)


def _slot_features(
    row: list[float],
    c: Candidate,
    side_spans: list[tuple[int, int, bool, str]],
    n_before: int,
    n_after: int,
    clause_at: list[int],
    clause_terms: dict[int, list[tuple[int, int, str]]],
) -> None:
    """Fill the wh-slot alignment features of one candidate (see ``FEATURES``)."""
    bl = br = al = ar = 0
    seen: set[tuple[str, bool, bool]] = set()
    for ts, te, before, term in side_spans:
        if ts < c.end and te > c.start:
            continue  # inside the span: not context
        left = te <= c.start
        key = (term, before, left)
        if key in seen:
            continue
        seen.add(key)
        if before:
            bl, br = bl + left, br + (not left)
        else:
            al, ar = al + left, ar + (not left)
    row[_INDEX["before_terms_left"]] = bl / n_before if n_before else -1
    row[_INDEX["before_terms_right"]] = br / n_before if n_before else -1
    row[_INDEX["after_terms_right"]] = ar / n_after if n_after else -1
    row[_INDEX["after_terms_left"]] = al / n_after if n_after else -1
    terms = clause_terms.get(clause_at[c.start], [])
    outside = {t for ts, te, t in terms if ts >= c.end or te <= c.start}
    row[_INDEX["clause_coverage"]] = len(outside) / max(n_before + n_after, 1)
    row[_INDEX["window_gap"]] = row[_INDEX["left_window"]] + row[_INDEX["right_window"]]


# --- model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanModel:
    """A booster with its threshold; ``predict`` maps a feature matrix to probabilities."""

    predict: Callable[[np.ndarray], np.ndarray]
    threshold: float


def load_model_from(booster: Any, threshold: float) -> SpanModel:
    """Wrap a LightGBM booster (loaded or just trained) for scoring."""

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(rows, num_threads=1), dtype=np.float64)

    return SpanModel(predict, threshold)


def load_model(folder: Path = MODEL_DIR) -> SpanModel:
    """Load ``span.txt``/``span.json`` and refuse a model trained on other features."""
    import lightgbm as lgb

    meta: dict[str, Any] = json.loads((folder / "span.json").read_text(encoding="utf-8"))
    if tuple(meta["features"]) != FEATURES:
        raise RuntimeError(f"{folder / 'span.txt'} was trained on other features; retrain it")
    return load_model_from(lgb.Booster(model_file=str(folder / "span.txt")), meta["threshold"])


@lru_cache(maxsize=1)
def _model() -> SpanModel:
    return load_model()


def best_span(
    question: str, sentence: str, model: SpanModel | None = None
) -> tuple[int, int, float] | None:
    """The highest-scoring candidate ``(start, end, probability)`` in ``sentence``, if any."""
    if model is None:
        return _best_with_shipped_model(question, sentence)
    return _best(question, sentence, model)


@lru_cache(maxsize=1024)
def _best_with_shipped_model(question: str, sentence: str) -> tuple[int, int, float] | None:
    """Cached: an answer scores its chosen sentence twice (answerability, then the short
    answer), and the model is the costly part of both."""
    return _best(question, sentence, _model())


# Asked forms so specific that a span of another specific form never answers them: a price
# question is not answered by a percentage. The model learns this only weakly, since these
# forms are rare in training (a few dozen questions each).
_VETO_ASKS = np.array([ASKS.index(a) for a in ("money", "percent", "rank")], dtype=np.float64)


def veto(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``scores`` with 0 for candidates whose form contradicts a money/percent/rank question."""
    asks, agrees = rows[:, _INDEX["q_asks"]], rows[:, _INDEX["form_agrees"]]
    return np.where(np.isin(asks, _VETO_ASKS) & (agrees < 0), 0.0, scores)


def _best(question: str, sentence: str, model: SpanModel) -> tuple[int, int, float] | None:
    cands, rows = featurize(question, sentence)
    if not cands:
        return None
    scores = veto(rows, model.predict(rows))
    k = int(np.argmax(scores))
    return cands[k].start, cands[k].end, float(scores[k])


def span_score(question: str, text: str, start: int, end: int) -> float:
    """Probability of the best candidate in ``text[start:end]`` (0 when there is none)."""
    if not is_factoid(question):
        return 0.0
    best = best_span(question, text[start:end])
    return best[2] if best else 0.0


# What joins the items of a list answer ("微软、谷歌", "A和B", "A与B", "A及B", "A等").
_LIST_JOINER = re.compile(r"[、,，/;；]|和|与|及|或|等")
_PLURAL_ASK = ("哪些", "哪几", "哪两", "哪三")
_EACH_ASK = ("分别", "各自", "respectively", "each of")
_QUOTATION = re.compile(r"「[^」]*」|“[^”]*”|『[^』]*』")


def answers_whole(question: str, span: str) -> bool:
    """Whether one span can be the whole answer. A question of several parts (two question
    marks outside quotes, "分别", "各自", "各有几个") wants one fact per part, and one asking for
    several things ("哪些", "哪几", "哪两") wants a list: a single phrase shown as *the* answer
    would mislead. Cues such as "以及" or two years, which ``rag.question`` also counts as several
    parts, are left out: "A以及哪一个?" and "1984年6月至1985年1月" ask for one thing."""
    bare = _QUOTATION.sub("", question)
    if len(sub_questions(bare)) > 1 or any(c in bare.lower() for c in _EACH_ASK):
        return False
    if EACH.search(bare):
        return False
    return not any(c in bare for c in _PLURAL_ASK) or bool(_LIST_JOINER.search(span))


def short_answer(
    question: str,
    text: str,
    start: int,
    end: int,
    *,
    doc: str,
    date: str | None = None,
    context_start: int | None = None,
) -> ShortAnswer | None:
    """The words of ``text[start:end]`` that answer ``question``, or None when not confident.

    ``context_start`` is accepted for callers that know the preceding context; the model scores
    the sentence alone because that is what it was trained on.
    """
    if not is_factoid(question):
        return None
    best = best_span(question, text[start:end])
    if best is None or best[2] < _model().threshold:
        return None
    s, e, score = best
    span = text[start + s : start + e]
    if not answers_whole(question, span):
        return None
    return ShortAnswer(span, doc, start + s, start + e, score, resolve_date(span, date))


# --- relative dates ----------------------------------------------------------------------------

_RELATIVE = re.compile(
    r"(?P<year>今年|去年|前年|明年|后年)?"
    rf"(?:\s?(?P<month>{_DAY})\s?月|(?P<rmonth>本月|上月|下月|上个月|下个月|这个月))?"
    rf"(?:\s?(?P<day>{_DAY})\s?[日号])?"
    r"|(?P<rday>今天|今日|昨天|昨日|前天|明天|明日)"
)
_YEAR_SHIFT = {"今年": 0, "去年": -1, "前年": -2, "明年": 1, "后年": 2}
_MONTH_SHIFT = {"本月": 0, "这个月": 0, "上月": -1, "上个月": -1, "下月": 1, "下个月": 1}
_DAY_SHIFT = {"今天": 0, "今日": 0, "昨天": -1, "昨日": -1, "前天": -2, "明天": 1, "明日": 1}
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _cn_int(text: str) -> int:
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _CN_DIGITS.get(tens, 1) * 10 + _CN_DIGITS.get(ones, 0)
    return _CN_DIGITS.get(text, 0)


def resolve_date(span: str, article_date: str | None) -> str | None:
    """The absolute form of a relative date in ``span`` ("今年6月" → "2023年6月"), else None."""
    if not article_date:
        return None
    try:
        today = Date.fromisoformat(article_date[:10])
    except ValueError:
        return None
    for m in _RELATIVE.finditer(span):
        if m.group("rday"):
            day = today + timedelta(days=_DAY_SHIFT[m.group("rday")])
            absolute = f"{day.year}年{day.month}月{day.day}日"
        elif m.group("year"):
            absolute = f"{today.year + _YEAR_SHIFT[m.group('year')]}年"
            if m.group("month"):
                absolute += f"{_cn_int(m.group('month'))}月"
                if m.group("day"):
                    absolute += f"{_cn_int(m.group('day'))}日"
        elif m.group("rmonth"):
            index = today.year * 12 + today.month - 1 + _MONTH_SHIFT[m.group("rmonth")]
            absolute = f"{index // 12}年{index % 12 + 1}月"
            if m.group("day"):
                absolute += f"{_cn_int(m.group('day'))}日"
        else:
            continue
        return span[: m.start()] + absolute + span[m.end() :]
    return None
