"""What a question asks for: its language, the kind of answer it expects, and its parts.

Used to score evidence (a "how much" question wants a sentence with a number), to decide
how many sentences an answer needs, and to route between extractive and LLM answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.tokens import tokenize

Language = Literal["zh", "en"]
Expectation = Literal["number", "time", "place", "person", "list", "reason", "other"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_YEAR = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}(?![0-9])")

# Cue phrases per expected answer kind, Chinese and English, checked in this order.
_CUES: list[tuple[Expectation, tuple[str, ...]]] = [
    ("reason", ("为什么", "为何", "原因", "why", "what caused", "reason")),
    (
        "time",
        (
            "哪一年",
            "哪年",
            "何时",
            "什么时候",
            "哪个月",
            "几月",
            "哪天",
            "哪一天",
            "when",
            "which year",
            "what year",
            "which month",
            "what month",
            "what date",
        ),
    ),
    (
        "number",
        (
            "多少",
            "几个",
            "几款",
            "几成",
            "多大",
            "比例",
            "百分之",
            "价格",
            "份额",
            "降幅",
            "how many",
            "how much",
            "what percentage",
            "what share",
            "what proportion",
            "how large",
            "how long",
            "what price",
            "how big",
        ),
    ),
    (
        "place",
        (
            "哪个城市",
            "哪座城市",
            "哪里",
            "何地",
            "在哪里",
            "在哪儿",
            "哪个国家",
            "哪个省",
            "where",
            "which city",
            "which country",
        ),
    ),
    ("person", ("是谁", "谁", "哪位", "who", "whom")),
    ("list", ("哪些", "哪几", "有什么", "which ones", "what are", "list")),
]

_MULTI_CUES = (
    "分别",
    "各自",
    "两者",
    "二者",
    "两篇",
    "两个",
    "两款",
    "两道",
    "两件",
    "两点",
    "以及",
    "respectively",
    "each of",
    "both",
)


@dataclass(frozen=True)
class QuestionInfo:
    """A parsed question; ``terms`` are its BM25 tokens (stop-words removed)."""

    text: str
    language: Language
    terms: tuple[str, ...]
    years: tuple[str, ...]
    expects: Expectation
    multi: bool
    parts: int


def detect_language(text: str) -> Language:
    """English when Latin letters clearly outnumber CJK characters, else Chinese."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return "en" if latin > 3 * cjk else "zh"


def has_number(text: str) -> bool:
    return bool(re.search(r"[0-9]", text)) or bool(
        re.search(r"[一二三四五六七八九十百千万亿两半]+(?:分之|成|倍|个|款|家|%|万|亿)", text)
    )


def _expectation(lowered: str) -> Expectation:
    for kind, cues in _CUES:
        if any(cue in lowered for cue in cues):
            return kind
    return "other"


MAX_SUB_QUESTIONS = 3


def sub_questions(text: str) -> list[str]:
    """The separate questions in "A是什么?B又是什么?" (one item when there is only one).

    At most the first three: each is embedded and scored on its own, so a question made of
    hundreds of "?"-ended clauses would otherwise cost hundreds of embeddings.
    """
    pieces = [c.strip() for c in re.split("(?<=[?\uff1f])", text)]
    clauses = [c for c in pieces if len(c) > 4]
    return clauses[:MAX_SUB_QUESTIONS] if len(clauses) > 1 else [text]


# "各重多少", "各有几个", "各是什么": 各 asking one value per item, like 分别.
EACH = re.compile(r"各(?:自)?[\u4e00-\u9fff]?(?:多少|几|是|为|有|占)")


def _parts(text: str, years: tuple[str, ...], multi: bool) -> int:
    """How many separate facts the question asks for (1 to 3)."""
    count = len(sub_questions(text))
    if len(set(years)) > 1:
        count = max(count, len(set(years)))
    if multi:
        count = max(count, 2)
    return min(count, 3)


@lru_cache(maxsize=4096)
def analyse(text: str) -> QuestionInfo:
    """Parse a question once; results are cached because every stage asks again."""
    lowered = text.lower()
    years = tuple(_YEAR.findall(text))
    multi = (
        any(cue in lowered for cue in _MULTI_CUES) or len(set(years)) > 1 or bool(EACH.search(text))
    )
    return QuestionInfo(
        text=text,
        language=detect_language(text),
        terms=tuple(dict.fromkeys(tokenize(text))),
        years=years,
        expects=_expectation(lowered),
        multi=multi,
        parts=_parts(text, years, multi),
    )
