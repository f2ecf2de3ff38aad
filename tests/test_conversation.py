"""Follow-up questions become standalone ones before retrieval; standalone ones stay as they are."""

from __future__ import annotations

import pytest

from rag.conversation import needs_context, rule_rewrite, standalone_question
from rag.llm import OpenAIChat
from tests.helpers.qwen import free_port

SHARE_2023 = "阿里云2023年的市场份额是多少?"


@pytest.mark.parametrize(
    "question",
    [
        "那2024年呢?",
        "那么2024年的呢？",
        "它的下载量呢?",
        "那腾讯云呢",
        "what about 2024?",
        "And in 2024?",
    ],
)
def test_short_question_that_leans_on_the_last_one_needs_context(question: str) -> None:
    assert needs_context(question)


@pytest.mark.parametrize(
    "question",
    [
        "Qwen2.5有多少个模型?",
        "通义千问三款主力模型最高降幅是多少?",
        "那么阿里云2024年在中国云市场的份额到底是多少?",  # opens like a follow-up, but is long
        "What did Alibaba Cloud announce at the 2024 Apsara Conference?",
    ],
    ids=["short", "numeric", "long-with-cue", "english"],
)
def test_standalone_question_needs_no_context(question: str) -> None:
    assert not needs_context(question)


@pytest.mark.parametrize(
    ("previous", "follow_up", "rewritten"),
    [
        (SHARE_2023, "那2024年呢?", "阿里云2024年的市场份额是多少?"),
        ("阿里云2023年的市场份额是多少？", "那2024年呢？", "阿里云2024年的市场份额是多少？"),
        (
            "What was Alibaba Cloud's market share in 2023?",
            "what about 2024?",
            "What was Alibaba Cloud's market share in 2024?",
        ),
        (
            "2023年和2024年阿里云分别降价多少?",
            "那2022年呢?",
            "2022年和2024年阿里云分别降价多少?",
        ),
    ],
    ids=["zh", "zh-fullwidth", "en", "first-of-two-years"],
)
def test_follow_up_with_a_new_year_puts_it_in_the_last_question(
    previous: str, follow_up: str, rewritten: str
) -> None:
    assert rule_rewrite(previous, follow_up) == rewritten
    assert standalone_question([previous], follow_up) == (rewritten, rewritten)


@pytest.mark.parametrize(
    ("previous", "follow_up", "rewritten"),
    [
        ("阿里云的市场份额是多少?", "那腾讯云呢?", "腾讯云的市场份额是多少？"),
        ("通义千问降价多少?", "它的下载量呢?", "通义千问降价多少 它的下载量？"),
        (
            "What was Alibaba Cloud's market share?",
            "What about Tencent Cloud?",
            "What was Alibaba Cloud's market share Tencent Cloud?",
        ),
    ],
    ids=["zh-name", "zh-pronoun", "en-name"],
)
def test_follow_up_without_a_year_asks_the_last_question_again(
    previous: str, follow_up: str, rewritten: str
) -> None:
    assert standalone_question([previous], follow_up) == (rewritten, rewritten)


def test_only_the_latest_question_is_borrowed() -> None:
    history = ["通义千问降价多少?", SHARE_2023]

    assert standalone_question(history, "那2024年呢?") == ("阿里云2024年的市场份额是多少?",) * 2


@pytest.mark.parametrize(
    "question",
    [
        "Qwen2.5有多少个模型?",
        "2024年阿里云在云栖大会上发布了什么新的服务器产品和网络系统?",
        "How many servers can the Ulanqab data centre hold?",
        pytest.param(
            "通义千问三款主力模型最高降幅是多少呢?",
        ),
    ],
    ids=["short", "long", "english", "trailing-ne"],
)
def test_standalone_question_is_left_untouched(question: str) -> None:
    assert standalone_question([SHARE_2023], question) == (question, None)


def test_follow_up_without_history_is_left_untouched() -> None:
    assert standalone_question([], "那2024年呢?") == ("那2024年呢?", None)


def test_rule_rewrite_is_the_fallback_when_the_llm_is_unreachable() -> None:
    """A real client pointed at a closed port: the request fails at once and the rule answers."""
    llm = OpenAIChat(f"http://127.0.0.1:{free_port()}/v1", "qwen", timeout=5)

    assert standalone_question([SHARE_2023], "那2024年呢?", llm) == (
        "阿里云2024年的市场份额是多少?",
        "阿里云2024年的市场份额是多少?",
    )
