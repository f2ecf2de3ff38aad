"""Near-miss training questions: one year, number or name changed so the paragraph that
answered the question no longer does."""

from __future__ import annotations

import random
import re

from rag.answering.near_miss import name_pool, near_miss, near_misses

PARAGRAPH = "1998年,张学友在香港获得金像奖最佳男主角。"
CORPUS = PARAGRAPH + "刘德华出生于香港。周杰伦在台北举办演唱会。"


def test_a_year_moves_to_one_the_paragraph_never_states() -> None:
    miss = near_miss("1998年张学友获得了什么奖项?", PARAGRAPH, CORPUS, {}, random.Random(0))

    assert miss is not None and miss.change == "year"
    year = re.search(r"\d{4}", miss.question)
    assert year and year.group() != "1998" and year.group() not in PARAGRAPH
    assert miss.question.replace(year.group(), "1998") == miss.original


def test_a_name_is_swapped_for_another_name_the_corpus_holds() -> None:
    questions = ["刘德华出生在哪里?", "周杰伦在哪里举办演唱会?", "张学友获得了什么奖项?"]
    pool = name_pool(questions)
    miss = near_miss("张学友获得了什么奖项?", PARAGRAPH, CORPUS.lower(), pool, random.Random(0))

    assert miss is not None and miss.change == "name"
    assert "张学友" not in miss.question and miss.question.endswith("获得了什么奖项?")
    swapped = miss.question.removesuffix("获得了什么奖项?")
    assert swapped in CORPUS and swapped not in PARAGRAPH


def test_a_question_with_nothing_to_change_gives_none() -> None:
    assert near_miss("他获得了什么奖项?", PARAGRAPH, CORPUS, {}, random.Random(0)) is None


def test_share_and_seed_fix_which_questions_change() -> None:
    items = [(f"{1990 + i}年张学友获得了什么奖项?", PARAGRAPH) for i in range(40)]

    first = near_misses(items, CORPUS, 0.5, seed=3)
    again = near_misses(items, CORPUS, 0.5, seed=3)

    assert first == again
    assert 8 <= len(first) <= 32  # about half of 40
    assert all(m.question != m.original for m in first)
