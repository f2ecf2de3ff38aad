"""The tamper suite: a fake OpenAI-compatible server returns honest replies and replies altered
the ways a model gets facts wrong; the verified answer keeps no altered sentence and drops
(almost) no honest one. Then the same server misbehaves through the HTTP API (plain and
streaming: 0 x 5xx), writes markup, cites passages that do not exist, and is left mid-stream
by clients that hang up.

Figures are printed (run with ``-s``): altered kept, honest dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.answer import Answerer
from rag.citations import Answer, check_answer
from rag.embedding import E5Embedder
from rag.index import SearchIndex
from rag.verify import split_reply
from tests.api_server import LiveServer, api_settings, serve
from tests.helpers.fake_llm import FakeLLM, Script, chunk
from tests.helpers.tamper import ALTERED, HONEST, Altered
from tests.test_llm import ECHO, SECRET

pytest_plugins = ["tests.api_fixtures", "tests.fake_llm_fixtures"]

MAX_HONEST_DROPPED = 0.05


def ask(fake: FakeLLM, answerer: Answerer, question: str, reply: str) -> Answer:
    fake.script(Script(reply, pieces=5))
    return answerer.answer(question, "llm")


def test_honest_sentences_are_kept(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex
) -> None:
    dropped = []
    for honest in HONEST:
        answer = ask(fake, answerer, honest.question, f"{honest.sentence}[1]")
        assert check_answer(answer, bundled_index) == []
        if answer.mode != "llm" or honest.sentence not in answer.answer:
            dropped.append((honest.sentence, answer.unsupported or answer.fallback_reason))
    print(f"\nhonest sentences dropped: {len(dropped)} / {len(HONEST)}")
    assert len(dropped) <= MAX_HONEST_DROPPED * len(HONEST), dropped


QWEN_REPLIES = Path(__file__).parent / "data" / "qwen_replies.json"


def test_real_qwen_honest_sentences_are_kept(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex
) -> None:
    """Replies the real local Qwen (0.5B) wrote, replayed as it sent them, hand-labelled."""
    replies = json.loads(QWEN_REPLIES.read_text(encoding="utf-8"))["replies"]
    honest = dropped = wrong_kept = 0
    for item in replies:
        if item["label"] not in ("honest", "wrong"):
            continue
        answer = ask(fake, answerer, item["question"], item["reply"])
        assert check_answer(answer, bundled_index) == []
        sentences = [_unpunctuated(t) for t, _ in split_reply(item["reply"])]
        kept = [t for t in sentences if answer.mode == "llm" and t in answer.answer]
        if item["label"] == "honest":
            honest += len(sentences)
            dropped += len(sentences) - len(kept)
        else:
            wrong_kept += len(kept)
    print(f"\nreal Qwen honest sentences dropped: {dropped} / {honest}; wrong kept: {wrong_kept}")
    assert dropped <= MAX_HONEST_DROPPED * honest
    assert wrong_kept == 0


def _unpunctuated(text: str) -> str:
    return text.rstrip("。.")


KINDS = sorted({a.kind for a in ALTERED})


@pytest.mark.parametrize("kind", KINDS)
def test_altered_sentences_are_never_kept(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex, kind: str
) -> None:
    kept: list[tuple[str, str]] = []
    cases = [a for a in ALTERED if a.kind == kind]
    for altered in cases:
        answer = ask(fake, answerer, HONEST[altered.honest].question, f"{altered.sentence}[1]")
        assert check_answer(answer, bundled_index) == []
        if answer.mode == "llm" and altered.marker in answer.answer:
            kept.append((altered.sentence, answer.answer))
        elif answer.mode == "llm":
            assert_reported(answer, altered)
    print(f"\n{kind}: altered kept {len(kept)} / {len(cases)}")
    assert kept == []


def assert_reported(answer: Answer, altered: Altered) -> None:
    """What was dropped or cut is in ``unsupported``, with the check it failed."""
    assert any(altered.marker in u and "(check failed: " in u for u in answer.unsupported), (
        answer.unsupported
    )


def test_an_appended_claim_is_cut_and_the_true_part_kept(fake: FakeLLM, answerer: Answerer) -> None:
    altered = next(a for a in ALTERED if a.marker == "永久免费")
    honest = HONEST[altered.honest].sentence

    answer = ask(fake, answerer, HONEST[altered.honest].question, altered.sentence)

    assert answer.answer == f"{honest}[1]"
    [reported] = answer.unsupported
    assert reported.startswith("而且张勇表示") and "(check failed: " in reported
    assert answer.faithfulness == 1.0


def test_honest_and_altered_sentences_in_one_reply(fake: FakeLLM, answerer: Answerer) -> None:
    honest, altered = HONEST[0], next(a for a in ALTERED if a.marker == "46%")
    reply = f"{honest.sentence}[1]{altered.sentence}[2]"

    answer = ask(fake, answerer, honest.question, reply)

    assert answer.answer == f"{honest.sentence}[1]"
    assert answer.faithfulness == 0.5
    assert answer.unsupported == [
        f"{altered.sentence} (check failed: number '46%' not in the source)"
    ]


@pytest.mark.parametrize(
    "reply",
    [
        "{s}[9]",
        "{s}[0][12]",
        "{s}【7】",
        "[3]{s}",
    ],
    ids=["beyond-passages", "zero-and-twelve", "fullwidth", "before-sentence"],
)
def test_markers_out_of_range_are_replaced_by_real_citations(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex, reply: str
) -> None:
    honest = HONEST[1]
    answer = ask(fake, answerer, honest.question, reply.format(s=honest.sentence))

    assert answer.mode == "llm"
    assert answer.answer == f"{honest.sentence}[1]"
    assert check_answer(answer, bundled_index) == []


INJECTIONS = [
    "<img src=x onerror=alert(1)>{s}",
    "{s}<script>alert('x')</script>",
    "<b>{s}</b>",
    "**{s}**",
    "# 答案\n- {s}",
    "[{s}](javascript:alert(1))",
    "{s}<!-- 忽略以上指令 -->",
    "{s}![x](http://evil.example/x.png)",
    "<a href='javascript:alert(1)'>{s}</a>",
    "{s}<img src=x onerror=alert(1)",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_markup_is_removed_from_the_answer(
    fake: FakeLLM, answerer: Answerer, bundled_index: SearchIndex, template: str
) -> None:
    honest = HONEST[0]
    answer = ask(fake, answerer, honest.question, template.format(s=honest.sentence))

    assert answer.mode == "llm"
    assert answer.answer == f"{honest.sentence}[1]"
    for bad in ("<", ">", "onerror", "javascript", "script", "**", "#", "evil"):
        assert bad not in answer.answer
        assert all(bad not in u for u in answer.unsupported)
    assert check_answer(answer, bundled_index) == []


# --- through the HTTP API ---------------------------------------------------------------------

BROKEN = [
    Script(raw=b"<html>oops</html>", content_type="text/html"),
    Script(raw=b"{not json"),
    Script(raw=b'{"choices": []}'),
    Script(raw=ECHO, status=401),
    Script(raw=b"upstream exploded", status=503),
    Script(events=[b"data: {broken\n\n"]),
    Script(events=[f"data: {ECHO.decode()}\n\n".encode()]),
    Script(reset=True),
    Script(text="x", drop_after=0),
    Script(text="<script>alert(1)</script>"),
]
BROKEN_IDS = [
    "html",
    "not-json",
    "empty-choices",
    "401-echo",
    "503",
    "broken-sse",
    "error-event",
    "reset",
    "dropped",
    "only-markup",
]


@pytest.fixture(scope="module")
def live(fake: FakeLLM, api_index_dir: object, e5: E5Embedder) -> Iterator[LiveServer]:
    settings = api_settings(
        api_index_dir,  # type: ignore[arg-type]
        llm_base_url=fake.base_url,
        llm_model="fake",
        llm_api_key=SECRET,
        llm_timeout=5,
    )
    with serve(settings, e5) as server:
        yield server


def chat(question: str, *, stream: bool, history: tuple[str, ...] = ()) -> dict[str, object]:
    messages = [{"role": "user", "content": h} for h in history]
    messages.append({"role": "user", "content": question})
    return {"model": "qianwen-rag-llm", "messages": messages, "stream": stream}


def sse_payloads(text: str) -> list[dict[str, object]]:
    lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
@pytest.mark.parametrize("script", BROKEN, ids=BROKEN_IDS)
def test_api_falls_back_for_every_broken_server(
    fake: FakeLLM, live: LiveServer, script: Script, stream: bool
) -> None:
    fake.script(script)
    # A follow-up: the rewrite asks the broken server first, then the answer does.
    body = chat("那2024年呢?", stream=stream, history=(HONEST[0].question,))
    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)

    assert response.status_code == 200, response.text
    assert SECRET not in response.text and "exploded" not in response.text
    if stream:
        *_, last = sse_payloads(response.text)
    else:
        last = response.json()
    rag = last["rag"]
    assert isinstance(rag, dict) and rag["mode"] == "extractive"
    assert "LLM" in str(rag["fallback_reason"])
    assert "<" not in response.text.replace("\\u003c", "")


def test_api_answer_of_a_markup_writing_model_is_plain_text(
    fake: FakeLLM, live: LiveServer
) -> None:
    honest = HONEST[0]
    fake.script(Script(f"<img src=x onerror=alert(1)>**{honest.sentence}**[1]"))
    body = chat(honest.question, stream=False)
    reply = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30).json()

    assert reply["choices"][0]["message"]["content"] == f"{honest.sentence}[1]"
    assert reply["rag"]["mode"] == "llm"


def test_client_disconnects_close_the_llm_requests(fake: FakeLLM, live: LiveServer) -> None:
    """20 streams cut off mid-answer leave no connection open at the LLM server."""
    honest = HONEST[0]
    # One verified sentence at once (the response starts), then a slow trickle for minutes.
    trickle = [chunk(f"{honest.sentence}[1]")] + [chunk("阿里云")] * 3000
    fake.script(Script(events=trickle, interval=0.05))
    before = fake.open_connections
    body = chat(honest.question, stream=True)
    for _ in range(20):
        url = f"{live.url}/v1/chat/completions"
        with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as r:
            assert r.status_code == 200
            next(r.iter_bytes())  # the first event, then hang up
    deadline = time.monotonic() + 1.0 + 0.1  # within a second (plus one trickle interval)
    while fake.open_connections > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.open_connections == before
