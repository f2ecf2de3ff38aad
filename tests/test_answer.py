"""Extractive answers over the bundled articles with the real e5: every marker has its citation,
every quote is a whole sentence sliced from its article, abstentions, languages, streaming,
modes, and the dev-set floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer import Answerer, Delta
from rag.citations import (
    NOT_ANSWERED_EN,
    NOT_ANSWERED_ZH,
    NOT_FOUND_EN,
    NOT_FOUND_ZH,
    Answer,
    check_answer,
)
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.errors import InvalidInputError
from rag.evaluation import answer_correct, read_questions
from rag.index import SearchIndex
from rag.question import detect_language
from rag.retrieval import Retriever
from rag.sentences import split_sentences
from rag.settings import Settings

DEV_SET = Path(__file__).parents[2] / "shared/eval/dev.jsonl"
ARTICLE_2023 = "000_64977604fa216111.txt"
ARTICLE_2024 = "001_bc9c23b05ece68e4.txt"

# Questions written from the article text: (question, article, words the answer must contain).
FACTS = [
    ("阿里云在2022年占中国云市场份额的多少?", ARTICLE_2023, "36%"),
    ("通义千问三款主力模型最高降幅是多少?", ARTICLE_2024, "85%"),
    ("HPN7.0能支持多少网络带宽?", ARTICLE_2024, "3.2T RDMA"),
    ("Qwen系列模型的全球下载量超过了多少?", ARTICLE_2024, "4000万"),
    ("张勇希望把训练一个模型的成本降低到现在的多少?", ARTICLE_2023, "十分之一"),
]
FACT_IDS = ["share", "price-cut", "hpn-bandwidth", "downloads", "training-cost"]


@pytest.fixture(scope="module")
def answerer(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Answerer:
    """Extractive only: no LLM is configured. Default settings, whatever RAG_* the shell has."""
    return Answerer(Engine(Settings.model_construct(), e5, bundled_index, retriever))


def assert_exact_citations(answer: Answer, index: SearchIndex, most: int | None = 3) -> None:
    """Markers and citations match one to one; each quote is a whole sentence of its article.

    ``most`` bounds the number of citations (extractive answers quote 1-3 sentences).
    """
    assert check_answer(answer, index) == [], answer.answer
    assert 1 <= len(answer.citations) <= (most or len(answer.citations))
    assert [c.id for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        document = index.documents[c.doc]
        assert c.title == document.title
        assert c.quote == document.text[c.start : c.end] != ""
        assert (c.start, c.end) in split_sentences(document.text), c.quote


def stream_events(answerer: Answerer, question: str, mode: str) -> tuple[list[Delta], Answer]:
    events = list(answerer.stream(question, mode))  # type: ignore[arg-type]
    *deltas, final = events
    assert all(isinstance(d, Delta) for d in deltas)
    assert isinstance(final, Answer)
    return deltas, final  # type: ignore[return-value]


@pytest.mark.parametrize(("question", "doc", "fact"), FACTS, ids=FACT_IDS)
def test_answer_quotes_the_sentence_that_states_the_fact(
    answerer: Answerer, bundled_index: SearchIndex, question: str, doc: str, fact: str
) -> None:
    answer = answerer.answer(question, "extractive")

    assert_exact_citations(answer, bundled_index)
    assert answer.answerable is True
    assert answer.mode == "extractive"
    assert answer.question == question
    assert answer.fallback_reason is None
    assert answer.faithfulness == 1.0
    assert any(c.doc == doc and fact in c.quote for c in answer.citations)
    # Nothing but the quotes and their markers: an extractive answer writes no words.
    assert answer.answer == "".join(f"{c.quote}[{c.id}]" for c in answer.citations)


def test_english_question_gets_an_english_wrapper_around_chinese_quotes(
    answerer: Answerer, bundled_index: SearchIndex
) -> None:
    answer = answerer.answer(
        "What share of China's cloud market did Alibaba Cloud hold in 2022?", "extractive"
    )

    assert_exact_citations(answer, bundled_index)
    assert answer.answer.startswith("The articles say (quoted in Chinese): ")
    assert all(detect_language(c.quote) == "zh" for c in answer.citations)
    assert any("36%" in c.quote for c in answer.citations)


@pytest.mark.parametrize(
    "question",
    [
        "如何做红烧肉?",
        "华为云2022年在中国云市场的份额是多少?",
        "腾讯云2022年在中国云市场的份额是多少?",
    ],
    ids=["off-topic", "absent-huawei", "absent-tencent"],
)
def test_chinese_question_the_articles_cannot_answer_abstains(
    answerer: Answerer, question: str
) -> None:
    answer = answerer.answer(question, "extractive")

    # "Nothing relevant" or "related but not answered": never a quoted answer.
    assert answer.answer in (NOT_FOUND_ZH, NOT_ANSWERED_ZH)
    assert answer.outcome in ("none", "related")
    assert answer.answerable is False
    assert answer.citations == []
    assert answer.unsupported, "the abstention should say why"


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",
        "How do I cook braised pork?",
    ],
    ids=["capital-of-france", "braised-pork"],
)
def test_english_off_topic_question_abstains_in_english(answerer: Answerer, question: str) -> None:
    answer = answerer.answer(question, "extractive")

    assert answer.answer in (NOT_FOUND_EN, NOT_ANSWERED_EN)
    assert answer.answerable is False
    assert answer.citations == []


@pytest.mark.parametrize(
    "question",
    [
        "2023年和2024年的两篇文章中,担任阿里云智能集团CEO的分别是谁?",
        "2023年阿里云峰会和2024年云栖大会分别在什么时候举办?",
        pytest.param(
            "2023年和2024年的文章中阿里云分别发布了什么?",
        ),
    ],
    ids=["ceo", "conferences", "announcements"],
)
def test_question_naming_2023_and_2024_cites_both_articles(
    answerer: Answerer, bundled_index: SearchIndex, question: str
) -> None:
    answer = answerer.answer(question, "extractive")

    assert_exact_citations(answer, bundled_index)
    assert {c.doc for c in answer.citations} == {ARTICLE_2023, ARTICLE_2024}


@pytest.mark.parametrize(
    "question",
    ["2023年和2024年的两篇文章中,担任阿里云智能集团CEO的分别是谁?", "HPN7.0能支持多少网络带宽?"],
    ids=["two-citations", "one-citation"],
)
def test_stream_deltas_add_up_to_the_final_answer(
    answerer: Answerer, bundled_index: SearchIndex, question: str
) -> None:
    deltas, answer = stream_events(answerer, question, "extractive")

    assert "".join(d.text for d in deltas) == answer.answer
    # One piece per cited sentence, each ending with its marker, so a page can render it early.
    assert [d.text for d in deltas] == [f"{c.quote}[{c.id}]" for c in answer.citations]
    assert_exact_citations(answer, bundled_index)
    whole = answerer.answer(question, "extractive")
    assert (whole.answer, whole.citations) == (answer.answer, answer.citations)


def test_abstention_streams_the_not_found_sentence(answerer: Answerer) -> None:
    deltas, answer = stream_events(answerer, "如何做红烧肉?", "extractive")

    assert "".join(d.text for d in deltas) == answer.answer
    assert answer.answer in (NOT_FOUND_ZH, NOT_ANSWERED_ZH)


def test_llm_mode_without_an_llm_falls_back_to_extractive_and_says_why(
    answerer: Answerer, bundled_index: SearchIndex
) -> None:
    assert answerer.llm is None and answerer.default_mode == "extractive"

    answer = answerer.answer("通义千问三款主力模型最高降幅是多少?", "llm")

    assert answer.mode == "extractive"
    assert answer.fallback_reason is not None
    assert "no LLM configured" in answer.fallback_reason
    assert answer.route is None
    assert_exact_citations(answer, bundled_index)


def test_auto_mode_without_an_llm_answers_an_open_question_extractively(
    answerer: Answerer, bundled_index: SearchIndex
) -> None:
    answer = answerer.answer("为什么现有的数字基础设施无法满足持续增加的需求?", "auto")

    assert answer.mode == answer.route == "extractive"
    assert answer.route_reason is not None
    assert answer.route_reason.startswith("open question")
    assert answer.route_reason.endswith("no LLM configured")
    assert_exact_citations(answer, bundled_index)


@pytest.mark.parametrize("mode", ["fast", "LLM", "generative"])
def test_unknown_mode_is_invalid_input(answerer: Answerer, mode: str) -> None:
    with pytest.raises(InvalidInputError, match="unknown mode"):
        answerer.answer("阿里云的市场份额是多少?", mode)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown mode"):
        next(answerer.stream("阿里云的市场份额是多少?", mode))  # type: ignore[arg-type]


@pytest.mark.parametrize("question", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
@pytest.mark.parametrize("mode", ["extractive", "auto", "llm"])
def test_empty_question_is_invalid_input(answerer: Answerer, question: str, mode: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        answerer.answer(question, mode)  # type: ignore[arg-type]


@pytest.mark.skipif(not DEV_SET.is_file(), reason=f"{DEV_SET} is absent")
def test_dev_set_accuracy_floor_with_exact_citations(
    answerer: Answerer, bundled_index: SearchIndex
) -> None:
    """Floors that catch regressions, not targets: 0.6 accuracy, every quote exact."""
    questions = read_questions(DEV_SET, bundled_index.documents)
    correct = 0
    wrong = []
    for q in questions:
        answer = answerer.answer(q.question, "extractive")
        assert check_answer(answer, bundled_index) == [], (q.id, answer.answer)
        for c in answer.citations:
            assert c.quote == bundled_index.documents[c.doc].text[c.start : c.end], q.id
        if answer_correct(q, answer):
            correct += 1
        else:
            wrong.append(q.id)

    accuracy = correct / len(questions)
    print(f"extractive accuracy {accuracy:.3f} on {len(questions)} questions; wrong: {wrong}")
    assert accuracy >= 0.6, wrong
