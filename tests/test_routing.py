"""Routing between the extractive path and the LLM, on questions about the bundled articles and
the evidence the answerer scores for them (``Answerer.prepare``, no LLM needed)."""

from __future__ import annotations

import dataclasses

import pytest

from rag.answer import Answerer
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.retrieval import Retriever
from rag.routing import CLEAR_LEAD, route
from rag.settings import Settings


@pytest.fixture(scope="module")
def answerer(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Answerer:
    return Answerer(Engine(Settings.model_construct(), e5, bundled_index, retriever))


@pytest.mark.parametrize(
    "question",
    [
        "阿里云2022年占中国云市场份额多少?",
        "通义千问三款主力模型最高降幅是多少?",
        "HPN7.0能支持多少网络带宽?",
        "What share of China's cloud market did Alibaba Cloud hold in 2022?",
    ],
    ids=["share", "price-cut", "bandwidth", "english-share"],
)
def test_short_numeric_question_with_one_clear_sentence_is_extractive(
    answerer: Answerer, question: str
) -> None:
    p = answerer.prepare(question)

    decision = route(p.info, p.scored)

    assert decision.mode == "extractive"
    assert decision.reason == "short number question with one clear evidence sentence"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("为什么现有的数字基础设施无法满足持续增加的需求?", "open question (expects reason)"),
        ("阿里云如何降低大模型训练的成本?", "open question"),
        ("比较2023年和2024年两篇文章对算力的看法。", "open question"),
        ("通义千问在钉钉会议中可以做哪些事?", "open question (expects list)"),
        ("Why can't existing digital infrastructure keep up with demand?", "open question"),
        ("Explain Alibaba Cloud's open-source strategy.", "open question"),
        ("阿里云的市场份额是多少?通义千问降价多少?", "multi-part question (2 parts)"),
        (
            "2023年和2024年的两篇文章中,担任阿里云智能集团CEO的分别是谁?",
            "multi-part question (2 parts)",
        ),
        ("两篇文章的作者各是谁?", "multi-part question (2 parts)"),
        (
            "根据第三方市调机构Canalys最新发布的2022年中国云市场数据,"
            "阿里云在2022年占中国云市场份额的具体百分比数字是多少?",
            "long question",
        ),
    ],
    ids=[
        "why",
        "how",
        "compare",
        "which-ones",
        "english-why",
        "english-explain",
        "two-questions",
        "two-years",
        "each",
        "long",
    ],
)
def test_open_comparative_multi_part_and_long_questions_go_to_the_llm(
    answerer: Answerer, question: str, reason: str
) -> None:
    p = answerer.prepare(question)

    decision = route(p.info, p.scored)

    assert decision.mode == "llm"
    assert decision.reason.startswith(reason), decision.reason


def test_short_numeric_question_without_a_clear_best_sentence_goes_to_the_llm(
    answerer: Answerer,
) -> None:
    p = answerer.prepare("通义千问三款主力模型最高降幅是多少?")
    best, runner_up, *rest = p.scored
    assert best.score - runner_up.score >= CLEAR_LEAD
    # The same evidence, with the runner-up brought level with the best sentence.
    level = dataclasses.replace(runner_up, score=best.score - CLEAR_LEAD / 2)

    decision = route(p.info, [best, level, *rest])

    assert decision.mode == "llm"
    assert decision.reason == "no single clear evidence sentence"


def test_every_route_carries_a_reason(answerer: Answerer) -> None:
    for question in ("阿里云2022年占中国云市场份额多少?", "为什么阿里云要降价?"):
        p = answerer.prepare(question)
        decision = route(p.info, p.scored)
        assert decision.mode in ("extractive", "llm")
        assert decision.reason.strip()
