"""Streamed answers arrive sentence by sentence, and the pieces add up to the plain answer."""

from __future__ import annotations

import re

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.api.streaming import sentence_pieces
from tests.api_server import LiveServer

pytest_plugins = ["tests.api_fixtures"]

MODEL = "qianwen-rag-extractive"
# Two questions in one: the extractive answer quotes one sentence for each.
TWO_PART = "阿里云是否透露了其大模型使用的芯片?文章说国内大模型训练多用什么芯片?"
MARKER_AT_END = re.compile(r"\[\d+\]$")


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("甲。乙！[1]丙?[2][3] 丁", ["甲。", "乙！[1]", "丙?[2][3]", " 丁"]),
        (
            "It rose 3.2 times.[1] Then it fell. [2]",
            ["It rose 3.2 times.[1]", " Then it fell. [2]"],
        ),
        ("他说：“好。”[1]然后", ["他说：“好。”[1]", "然后"]),
        ("Qwen2.5 发布", ["Qwen2.5 发布"]),
        ("", []),
    ],
    ids=["chinese", "english", "quote", "no-end", "empty"],
)
def test_sentence_pieces_cut_after_each_sentence_and_its_markers(
    text: str, pieces: list[str]
) -> None:
    assert list(sentence_pieces(text)) == pieces


@given(st.text(alphabet="甲乙 .。!？”[]12a\n", max_size=60))
def test_sentence_pieces_join_to_the_text(text: str) -> None:
    pieces = list(sentence_pieces(text))

    assert "".join(pieces) == text
    assert all(pieces)


def test_extractive_answer_streams_one_delta_per_cited_sentence(api_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key="none", max_retries=0)
    messages = [{"role": "user", "content": TWO_PART}]

    plain = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
    deltas = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]

    answer = plain.choices[0].message.content or ""
    assert len(plain.model_extra["citations"]) >= 2, answer
    assert len(deltas) >= 2, deltas
    assert "".join(deltas) == answer
    assert all(MARKER_AT_END.search(d) for d in deltas), deltas
