"""English through the LLM: English questions are asked for English answers, whose sentences
cite the Chinese sources when those support them (numbers, direction and negation checked); a
system message asking for a language is honoured, in plain and streaming chat.

Figures are printed (run with ``-s``): honest English sentences kept, altered ones kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from rag.answer import Answerer
from rag.citations import NOT_FOUND_EN, NOT_FOUND_ZH, check_answer
from rag.embedding import E5Embedder
from rag.index import SearchIndex
from rag.llm import build_messages, reply_language, requested_language
from rag.retrieval import Retriever
from tests.api_server import LiveServer, api_settings, serve
from tests.helpers.english import ALTERED, GLOSSED, HONEST, NEGATION_FLIPPED, English
from tests.helpers.fake_llm import FakeLLM, Script

pytest_plugins = ["tests.api_fixtures", "tests.fake_llm_fixtures"]

# Measured on tests/helpers/english.py: 11 of 12 honest sentences kept (the one lost has no
# number and aligns to the wrong sentence); every altered number, direction and negation caught.
MIN_HONEST_KEPT = 0.9
# Sentences that invent a claim with no number, name in the source, direction or negation
# ("The models are free for everyone forever.") are not caught across languages; the altered
# facts are.
INVENTED = 3


def prompt(fake: FakeLLM) -> tuple[str, str]:
    """(system, user) of the last request the fake LLM received."""
    messages = fake.requests[-1]["messages"]
    return messages[0]["content"], messages[-1]["content"]


def test_english_question_asks_for_an_english_answer(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex
) -> None:
    honest = HONEST[0]
    fake.script(Script(f"{honest.sentence}[1]"))
    answer = answerer.answer(honest.question, "llm")

    system, user = prompt(fake)
    assert "in English" in system and NOT_FOUND_EN in system
    assert user.endswith("Answer in English.")
    assert answer.mode == "llm", answer.fallback_reason
    assert answer.answer.startswith(honest.sentence) and answer.citations
    assert "36%" in answer.citations[0].quote
    assert check_answer(answer, bundled_index) == []


def test_chinese_question_keeps_the_prompt_it_had(fake: FakeLLM, answerer: Answerer) -> None:
    fake.script(Script("阿里云在2022年占中国云市场份额的36%,排名第一。[1]"))
    answerer.answer("阿里云2022年在中国云市场的份额是多少?", "llm")

    system, user = prompt(fake)
    assert "in the language of the question" in system and NOT_FOUND_ZH in system
    assert user.endswith("Question: 阿里云2022年在中国云市场的份额是多少?")


def test_honest_english_sentences_cite_their_chinese_sources(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex
) -> None:
    kept = []
    for honest in HONEST:
        fake.script(Script(f"{honest.sentence}[1]", pieces=4))
        answer = answerer.answer(honest.question, "llm")
        assert check_answer(answer, bundled_index) == []
        if answer.mode == "llm" and honest.sentence in answer.answer:
            kept.append(honest.sentence)
    print(f"\nhonest English sentences kept: {len(kept)} / {len(HONEST)}")
    assert len(kept) >= MIN_HONEST_KEPT * len(HONEST)


def test_altered_english_facts_are_not_kept(fake: FakeLLM, answerer: Answerer) -> None:
    kept = []
    for honest, sentence in ALTERED:
        fake.script(Script(f"{sentence}[1]", pieces=4))
        answer = answerer.answer(HONEST[honest].question, "llm")
        if answer.mode == "llm" and sentence.rstrip(".") in answer.answer:
            kept.append(sentence)
    print(f"\naltered English sentences kept: {len(kept)} / {len(ALTERED)}: {kept}")
    altered_facts = [s for _, s in ALTERED[: len(ALTERED) - INVENTED]]
    assert not set(kept) & set(altered_facts)


@pytest.mark.parametrize("case", GLOSSED, ids=lambda c: c.sentence[:30])
def test_english_sentence_glossing_a_chinese_name_is_kept(
    fake: FakeLLM, answerer: Answerer, case: English
) -> None:
    fake.script(Script(f"{case.sentence}[1]"))
    answer = answerer.answer(case.question, "llm")
    assert answer.mode == "llm" and answer.answer.startswith(case.sentence), answer.unsupported


def test_english_sentence_glossing_a_wrong_name_is_dropped(
    fake: FakeLLM, answerer: Answerer
) -> None:
    honest = HONEST[0]
    fake.script(Script("Tencent Cloud (腾讯云) held 36% of China's cloud market in 2022.[1]"))
    answer = answerer.answer(honest.question, "llm")
    assert answer.mode == "extractive"  # nothing supported: the LLM answer is not shown
    assert "腾讯云" not in answer.answer


@pytest.mark.parametrize("case", NEGATION_FLIPPED, ids=lambda c: c.sentence[:30])
def test_english_sentence_flipping_a_negation_is_dropped(
    fake: FakeLLM, answerer: Answerer, case: English
) -> None:
    fake.script(Script(f"{case.sentence}[1]"))
    answer = answerer.answer(case.question, "llm")
    assert answer.mode == "extractive"  # its only sentence failed: the extractive answer
    assert case.sentence.rstrip(".") not in answer.answer


@pytest.mark.parametrize(
    ("system", "language"),
    [
        ("You are a helpful assistant. Always answer in English.", "en"),
        ("Please reply to the user in English only.", "en"),
        ("请用英文回答。", "en"),
        ("Answer in Chinese.", "zh"),
        ("请用中文回答用户的问题。", "zh"),
        ("Answer in English, never in Chinese.", "en"),
        ("You are a helpful assistant.", None),
        ("Be concise.", None),
    ],
)
def test_requested_language(system: str, language: str | None) -> None:
    assert requested_language(system) == language


def test_requested_language_overrides_the_questions(
    bundled_index: SearchIndex, retriever: Retriever
) -> None:
    question = "阿里云2022年在中国云市场的份额是多少?"
    hits = retriever.search(question, 2).hits
    with reply_language("en"):
        system, user = (m["content"] for m in build_messages(question, hits, bundled_index, "x"))
    assert "in English" in system and NOT_FOUND_EN in system and "x" not in system[-5:]
    assert user.endswith("Answer in English.")
    system, _ = (m["content"] for m in build_messages(question, hits, bundled_index, "x"))
    assert "in the language of the question" in system  # the setting ended with the block


@pytest.fixture(scope="module")
def live(fake: FakeLLM, api_index_dir: object, e5: E5Embedder) -> Iterator[LiveServer]:
    settings = api_settings(
        api_index_dir,  # type: ignore[arg-type]
        llm_base_url=fake.base_url,
        llm_model="fake",
        llm_timeout=5,
    )
    with serve(settings, e5) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
def test_chat_honours_a_system_message_asking_for_english(
    fake: FakeLLM, live: LiveServer, stream: bool
) -> None:
    honest = HONEST[0]
    fake.script(Script(f"{honest.sentence}[1]", pieces=4))
    body = {
        "model": "qianwen-rag-llm",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer in English."},
            {"role": "user", "content": "阿里云2022年在中国云市场的份额是多少?"},
        ],
    }
    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text

    system, user = prompt(fake)
    assert "in English" in system and user.endswith("Answer in English.")
    if stream:
        lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        payloads = [json.loads(line) for line in lines[:-1]]
        text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads)
        rag = payloads[-1]["rag"]
    else:
        text = response.json()["choices"][0]["message"]["content"]
        rag = response.json()["rag"]
    assert rag["mode"] == "llm", rag
    assert text.startswith(honest.sentence)
