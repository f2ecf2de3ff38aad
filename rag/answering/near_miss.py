"""Near-miss questions for training the answerability judge.

Reading-comprehension sets hold only questions their paragraph answers, and a paragraph left
out of the corpus yields questions whose neighbours are merely on the same topic. The "not
found" cases users meet on news are closer than that: the article gives the figure for 2022
but the question asks about 2024, or gives a rival's spending where the question names another
company. A near miss here is a real training question with one thing changed, a year or number
moved to a value its paragraph never states, or a name swapped for another name that the
corpus does hold, so the sentence that answered it still looks right and no longer does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.answering.features import YEAR_ASKED, question_names, tag_words

_NUMBER = re.compile(r"(?<![0-9.])([0-9]{1,4})(?![0-9.])")
SWAP_TAGS = ("nr", "ns", "nt")  # nz (other proper nouns) is mostly jieba guessing


@dataclass(frozen=True)
class NearMiss:
    question: str  # the changed question
    original: str
    change: str  # "year", "number" or "name"


def _tag(word: str, question: str) -> str | None:
    """The name's kind when it stands alone in ``question``: a whole jieba word whose
    neighbours are not nouns, so a swap does not split a longer name jieba cut in two
    (软枝|黄蝉)."""
    words = tag_words(question)
    for i, (w, t) in enumerate(words):
        if w.lower() != word:
            continue
        around = [words[j][1] for j in (i - 1, i + 1) if 0 <= j < len(words)]
        if any(a.startswith(("n", "eng", "j", "g")) for a in around):
            return None
        return next((prefix for prefix in SWAP_TAGS if t.startswith(prefix)), None)
    return None


def name_pool(questions: Iterable[str]) -> dict[str, list[str]]:
    """Names by part of speech (person, place, organisation, other proper noun) from the
    questions, to swap one question's name for another's."""
    pool: dict[str, set[str]] = {}
    for q in questions:
        for name in question_names(q):
            tag = _tag(name, q)
            if tag:
                pool.setdefault(tag, set()).add(name)
    return {tag: sorted(names) for tag, names in pool.items()}


def _other_year(year: int, paragraph: str, rng: random.Random) -> str | None:
    choices = [y for d in range(1, 9) for y in (year - d, year + d)]
    rng.shuffle(choices)
    return next((str(y) for y in choices if str(y) not in paragraph and y <= 2030), None)


def _other_number(number: int, paragraph: str, rng: random.Random) -> str | None:
    for _ in range(10):
        new = max(2, number + rng.choice([-1, 1]) * rng.randint(1, max(2, number)))
        if new != number and str(new) not in paragraph:
            return str(new)
    return None


def near_miss(
    question: str,
    paragraph: str,
    corpus_text: str,
    pool: dict[str, list[str]],
    rng: random.Random,
) -> NearMiss | None:
    """``question`` with one year, number or name changed so that ``paragraph`` no longer
    answers it; None when it holds nothing to change. A swapped-in name occurs somewhere in
    ``corpus_text`` (else the service would say at once that the articles never name it)."""
    year = YEAR_ASKED.search(question)
    if year:
        new = _other_year(int(year.group(1)), paragraph, rng)
        if new:
            return NearMiss(
                question[: year.start(1)] + new + question[year.end(1) :], question, "year"
            )
    names = [n for n in question_names(question) if n in paragraph.lower() and _tag(n, question)]
    rng.shuffle(names)
    for name in names:
        tag = _tag(name, question)
        if tag is None:
            continue
        options = [
            o
            for o in pool.get(tag, [])
            if o != name and o not in paragraph.lower() and o in corpus_text
        ]
        if options:
            swap = rng.choice(options)
            start = question.lower().index(name)
            changed = question[:start] + swap + question[start + len(name) :]
            return NearMiss(changed, question, "name")
    number = _NUMBER.search(question)
    if number:
        new = _other_number(int(number.group(1)), paragraph, rng)
        if new:
            changed = question[: number.start(1)] + new + question[number.end(1) :]
            return NearMiss(changed, question, "number")
    return None


def near_misses(
    items: Sequence[tuple[str, str]], corpus_text: str, share: float, seed: int
) -> list[NearMiss]:
    """Near misses for a random ``share`` of ``items`` ((question, paragraph text) pairs)."""
    rng = random.Random(seed)
    pool = name_pool(q for q, _ in items)
    lowered = corpus_text.lower()
    out = []
    for question, paragraph in items:
        if rng.random() >= share:
            continue
        miss = near_miss(question, paragraph, lowered, pool, rng)
        if miss:
            out.append(miss)
    return out
