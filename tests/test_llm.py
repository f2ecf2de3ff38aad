"""Every way an LLM server can fail ends in an LLMError we wrote (a status and a short cause,
never the server's text or a key), so answers fall back to extraction and a follow-up falls
back to the rewrite rules. The server is :class:`FakeLLM`, on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

from rag.answer import Answerer
from rag.conversation import rule_rewrite, standalone_question
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.errors import LLMError
from rag.index import SearchIndex
from rag.llm import OpenAIChat, Upstream
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.helpers.fake_llm import FakeLLM, Script, chunk

SECRET = "sk-secret-0123456789abcdef"
ECHO = json.dumps(
    {"error": {"message": f"Incorrect API key provided: Bearer {SECRET}", "type": "auth"}}
).encode()
MESSAGES = [{"role": "user", "content": "你好"}]
QUESTION = "通义千问三款主力模型最高降幅是多少?"

# (id, script, words our message must contain)
PLAIN_FAILURES = [
    (
        "html-200",
        Script(raw=b"<html>502 Bad Gateway</html>", content_type="text/html"),
        "malformed",
    ),
    ("not-json", Script(raw=b"{not json", content_type="application/json"), "malformed"),
    ("not-utf8", Script(raw=b"\xff\xfe\xfa", content_type="application/json"), "malformed"),
    ("wrong-schema", Script(raw=b'{"answer": "36%"}'), "empty reply"),
    ("choices-not-list", Script(raw=b'{"choices": "36%"}'), "malformed"),
    (
        "content-not-text",
        Script(raw=b'{"choices": [{"message": {"content": 36}}]}'),
        "malformed",
    ),
    ("empty-choices", Script(raw=b'{"choices": []}'), "empty reply"),
    ("json-array", Script(raw=b"[1, 2]"), "malformed"),
    ("401-echoing-key", Script(raw=ECHO, status=401), "HTTP 401, authentication failed"),
    ("500-with-body", Script(raw=b"Traceback: secret path /srv/x", status=500), "HTTP 500"),
    ("429", Script(raw=b"slow down", status=429, content_type="text/plain"), "HTTP 429"),
    ("timeout", Script(text="late", delay=3), "timed out"),
    ("reset", Script(reset=True), "connection"),
]
# A stream request answered with a plain body is malformed whatever the body says.
STREAM_FAILURES = [
    *[(c, s, "malformed" if s.status == 200 and s.raw else w) for c, s, w in PLAIN_FAILURES],
    ("broken-data-line", Script(events=[b"data: {not json\n\n"]), "malformed"),
    ("not-utf8-event", Script(events=[b"data: \xff\xfe\n\n"]), "malformed"),
    ("error-event", Script(events=[f"data: {ECHO.decode()}\n\n".encode()]), "error event"),
    (
        "chunk-wrong-schema",
        Script(events=[b'data: {"choices": 5}\n\n', b"data: [DONE]\n\n"]),
        "malformed",
    ),
    ("no-events", Script(events=[]), "empty reply"),
    ("only-done", Script(events=[b"data: [DONE]\n\n"]), "empty reply"),
    ("dropped-before-text", Script(text="x", drop_after=0), "connection"),
]


def ids(cases: list[tuple[str, Script, str]]) -> list[str]:
    return [c[0] for c in cases]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def client(fake: FakeLLM, timeout: float = 1.0) -> OpenAIChat:
    return OpenAIChat(fake.base_url, "fake", api_key=SECRET, timeout=timeout)


def assert_ours(message: str, words: str) -> None:
    assert message.startswith("LLM ") and words in message, message
    for upstream in (SECRET, "Bearer", "Traceback", "Bad Gateway", "slow down", "Incorrect"):
        assert upstream not in message


@pytest.mark.parametrize(("case", "script", "words"), PLAIN_FAILURES, ids=ids(PLAIN_FAILURES))
def test_complete_turns_every_failure_into_our_llm_error(
    fake: FakeLLM, case: str, script: Script, words: str
) -> None:
    fake.script(script)
    with pytest.raises(LLMError) as caught:
        client(fake).complete(MESSAGES)
    assert_ours(caught.value.message, words)
    # Nothing upstream rides along in the exception chain either (tracebacks get logged).
    assert SECRET not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(("case", "script", "words"), STREAM_FAILURES, ids=ids(STREAM_FAILURES))
def test_stream_turns_every_failure_into_our_llm_error(
    fake: FakeLLM, case: str, script: Script, words: str
) -> None:
    fake.script(script)
    with pytest.raises(LLMError) as caught:
        list(client(fake).stream(MESSAGES))
    assert_ours(caught.value.message, words)


def test_key_is_sent_as_a_bearer_header(fake: FakeLLM) -> None:
    fake.script(Script("好。"))
    assert client(fake).complete(MESSAGES) == "好。"
    headers = {k.lower(): v for k, v in fake.headers[-1].items()}
    assert headers["authorization"] == f"Bearer {SECRET}"


def test_honest_stream_yields_its_text(fake: FakeLLM) -> None:
    fake.script(Script("阿里云份额36%。", pieces=4))
    assert "".join(client(fake).stream(MESSAGES)) == "阿里云份额36%。"


def test_a_stream_that_trickles_past_its_budget_is_cut(fake: FakeLLM) -> None:
    fake.script(Script(events=[chunk("字")] * 40, interval=0.1))
    chat = client(fake, timeout=0.5)  # budget: 4 x 0.5 s for the whole reply
    started = time.monotonic()
    with pytest.raises(LLMError, match="no full reply in 2 s"):
        list(chat.stream(MESSAGES))
    assert time.monotonic() - started < 3.5


# --- through the answer pipeline ------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Engine:
    return Engine(Settings.model_construct(), e5, bundled_index, retriever)


@pytest.mark.parametrize(
    ("case", "script", "words"),
    [c for c in STREAM_FAILURES if c[0] != "timeout"]
    + [("timeout", Script(text="late", delay=1.5), "timed out")],
    ids=ids(STREAM_FAILURES),
)
def test_every_failure_falls_back_to_an_extractive_answer(
    fake: FakeLLM,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    case: str,
    script: Script,
    words: str,
) -> None:
    fake.script(script)
    with caplog.at_level(logging.DEBUG):
        answer = Answerer(engine, client(fake)).answer(QUESTION, "llm")

    assert answer.mode == "extractive" and answer.citations
    assert answer.fallback_reason is not None
    assert_ours(answer.fallback_reason, words)
    assert SECRET not in caplog.text and "Incorrect API key" not in caplog.text


# --- the follow-up rewrite --------------------------------------------------------------------

HISTORY = ["阿里云2022年在中国云市场的份额是多少?"]
FOLLOW_UP = "那2024年呢?"


@pytest.mark.parametrize(
    "script",
    [
        Script(raw=b"{not json"),
        Script(raw=ECHO, status=401),
        Script(raw=b'{"choices": []}'),
        Script(reset=True),
        Script(text="<script>alert(1)</script>"),
        Script(text="重写:" + "很长" * 200),
    ],
    ids=["not-json", "401", "empty-choices", "reset", "only-markup", "rambling"],
)
def test_follow_up_rewrite_falls_back_to_the_rules(fake: FakeLLM, script: Script) -> None:
    fake.script(script)
    question, rewrite = standalone_question(HISTORY, FOLLOW_UP, client(fake))
    assert question == rewrite == rule_rewrite(HISTORY[0], FOLLOW_UP)


def test_follow_up_rewrite_by_the_model_loses_its_markup(fake: FakeLLM) -> None:
    fake.script(Script(text="**阿里云2024年在中国云市场的份额是多少?**<br>\n多余的一行"))
    question, rewrite = standalone_question(HISTORY, FOLLOW_UP, client(fake))
    assert question == rewrite == "阿里云2024年在中国云市场的份额是多少?"


def test_cancelling_the_upstream_wakes_a_blocked_stream_and_closes_it(fake: FakeLLM) -> None:
    """What a client disconnect does: the worker blocked on a silent server fails at once."""
    fake.script(Script(events=[chunk("字")] * 100, interval=5))  # then silence for 5 s
    before = fake.open_connections
    upstream = Upstream()
    outcome: list[BaseException | list[str]] = []

    def read() -> None:
        with upstream.active():
            try:
                outcome.append(list(client(fake, timeout=30).stream(MESSAGES)))
            except LLMError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=read)
    worker.start()
    time.sleep(0.5)  # the first piece has arrived; the worker waits for the next
    cancelled = time.monotonic()
    upstream.cancel()
    worker.join(5)

    assert not worker.is_alive() and time.monotonic() - cancelled < 1.0
    [error] = outcome
    assert isinstance(error, LLMError) and "cancelled" in error.message
    deadline = time.monotonic() + 1.0
    while fake.open_connections > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.open_connections == before
