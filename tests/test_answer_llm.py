"""Answers written by the real local Qwen and verified against the bundled articles, routing in
``auto`` mode, and the fall-back to extractive answers when the LLM dies, is not there, or drops
the connection half-way through a reply.

The Qwen tests are slow (one shared server, a few questions). The tests that need a reply no
real model gives on cue use :class:`ScriptedChatServer`, a tiny OpenAI-compatible HTTP server:
the one fake here, at a boundary we do not own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest

from rag.answer import Answerer, Delta
from rag.citations import NOT_FOUND_ZH, Answer, Citation, check_answer
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.llm import OpenAIChat
from rag.retrieval import Retriever
from rag.sentences import split_sentences
from rag.settings import Settings
from tests.helpers.qwen import LlamaServer, free_port
from tests.test_answer import assert_exact_citations, stream_events

# Seconds per LLM request. Short, so a dead server cannot hang a test, yet above the time the
# 0.5B Qwen needs to read five passages on a busy 2-core machine before its first token.
LLM_TIMEOUT = 60.0
DYING_TIMEOUT = 30.0

# Dev-style questions and words of the one article sentence that answers each.
QUESTIONS = [
    ("阿里云在2022年占中国云市场份额的多少?", "阿里云在2022年占中国云市场份额的36%"),
    ("通义千问三款主力模型最高降幅是多少?", "通义千问三款主力模型再次大幅降价,最高降幅 85%"),
    (
        "张勇希望把在阿里云上训练一个模型的成本降低到现在的多少?",
        "能够降低到现在的十分之一,甚至是百分之一",
    ),
]
OPEN_QUESTION = "为什么现有的数字基础设施无法满足持续增加的需求?"
SHARE = (
    "根据第三方市调机构Canalys最新发布的2022年中国云市场数据显示,阿里云在2022年占中国云市场"
    "份额的36%,排名第一,虽然业绩稳定增长,但增速持续放缓。"
)
INVENTED = "阿里云在火星上建了数据中心。"


class Streamed(NamedTuple):
    question: str
    deltas: list[Delta]
    answer: Answer


def stream(answerer: Answerer, question: str, mode: str = "llm") -> Streamed:
    return Streamed(question, *stream_events(answerer, question, mode))


def evidence_sentence(index: SearchIndex, words: str) -> tuple[str, int, int]:
    """(doc, start, end) of the article sentence that contains ``words``."""
    for doc, document in index.documents.items():
        at = document.text.find(words)
        if at >= 0:
            return next((doc, s, e) for s, e in split_sentences(document.text) if s <= at < e)
    raise AssertionError(f"{words!r} is in no article")


def overlaps(c: Citation, span: tuple[str, int, int]) -> bool:
    doc, start, end = span
    return c.doc == doc and c.start < end and start < c.end


@pytest.fixture(scope="module")
def engine(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Engine:
    return Engine(Settings.model_construct(), e5, bundled_index, retriever)


# --- the real Qwen ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_answerer(engine: Engine, qwen_server: LlamaServer) -> Answerer:
    return Answerer(
        engine, OpenAIChat(qwen_server.base_url, qwen_server.model, timeout=LLM_TIMEOUT)
    )


@pytest.fixture(scope="module")
def llm_answers(qwen_answerer: Answerer) -> list[Streamed]:
    """The questions streamed once in ``llm`` mode; the tests below read the results."""
    answers = [stream(qwen_answerer, question) for question, _ in QUESTIONS]
    for s in answers:
        a = s.answer
        print(f"{a.mode} {a.timings.get('total', 0):.1f}s {a.answer!r} {a.fallback_reason or ''}")
    return answers


@pytest.mark.slow
def test_llm_answers_cite_exact_whole_sentences(
    llm_answers: list[Streamed], bundled_index: SearchIndex
) -> None:
    written = [s.answer for s in llm_answers if s.answer.mode == "llm"]
    assert written, [s.answer.fallback_reason for s in llm_answers]
    for answer in written:
        assert answer.answerable is True
        assert answer.fallback_reason is None and answer.route is None
        assert_exact_citations(answer, bundled_index, most=None)
        assert answer.faithfulness is not None and 0 < answer.faithfulness <= 1
    for s in llm_answers:
        if s.answer.mode != "llm":  # Qwen's reply could not be verified: it says so
            assert s.answer.fallback_reason, s.answer
            assert_exact_citations(s.answer, bundled_index)


@pytest.mark.slow
def test_llm_answers_cite_the_known_evidence(
    llm_answers: list[Streamed], bundled_index: SearchIndex
) -> None:
    hits = {
        s.question: [c.quote for c in s.answer.citations if overlaps(c, evidence)]
        for s, (_, words) in zip(llm_answers, QUESTIONS, strict=True)
        if s.answer.mode == "llm"
        for evidence in [evidence_sentence(bundled_index, words)]
    }
    assert any(hits.values()), {s.question: s.answer.answer for s in llm_answers}


@pytest.mark.slow
def test_llm_stream_deltas_add_up_to_the_final_answer(llm_answers: list[Streamed]) -> None:
    for s in llm_answers:
        assert s.deltas, s.question
        assert "".join(d.text for d in s.deltas) == s.answer.answer, s.question


@pytest.mark.slow
def test_auto_mode_quotes_a_short_numeric_question_and_writes_an_open_one(
    qwen_answerer: Answerer, bundled_index: SearchIndex
) -> None:
    short = qwen_answerer.answer("阿里云2022年占中国云市场份额多少?", "auto")
    assert (short.route, short.mode) == ("extractive", "extractive")
    assert short.route_reason == "short number question with one clear evidence sentence"
    assert_exact_citations(short, bundled_index)

    opened = stream(qwen_answerer, OPEN_QUESTION, "auto")
    answer = opened.answer
    assert (answer.route, answer.mode) == ("llm", "llm"), answer.fallback_reason
    assert answer.route_reason == "open question (expects reason)"
    assert_exact_citations(answer, bundled_index, most=None)
    assert "".join(d.text for d in opened.deltas) == answer.answer


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_server_killed_mid_request_falls_back_to_extractive_at_once(
    engine: Engine, qwen_gguf: Path, tmp_path: Path, bundled_index: SearchIndex
) -> None:
    """Its own server: the shared one must live on for the other tests."""
    with LlamaServer(qwen_gguf, tmp_path / "llama-server.log") as server:
        answerer = Answerer(
            engine, OpenAIChat(server.base_url, server.model, timeout=DYING_TIMEOUT)
        )
        results: list[Streamed | BaseException] = []

        def ask() -> None:
            try:
                results.append(stream(answerer, OPEN_QUESTION))
            except BaseException as exc:  # reported by the main thread
                results.append(exc)

        worker = threading.Thread(target=ask, daemon=True)
        worker.start()
        # The server logs the request as it starts streaming the response, seconds before the
        # first token: reading the passages takes the 0.5B model that long.
        wait_for(
            lambda: "POST /v1/chat/completions" in server.log_path.read_text(errors="replace"),
            LLM_TIMEOUT,
            "the chat request to reach the server",
        )
        assert worker.is_alive() and not results
        server.kill()
        killed = time.monotonic()
        worker.join(DYING_TIMEOUT + 10)
        waited = time.monotonic() - killed

    assert not worker.is_alive(), "the answer hung after the LLM died"
    [result] = results
    assert isinstance(result, Streamed), result
    answer = result.answer
    assert answer.mode == "extractive"
    assert answer.fallback_reason is not None and "LLM" in answer.fallback_reason
    assert waited < DYING_TIMEOUT, f"fell back after {waited:.1f} s"
    assert_exact_citations(answer, bundled_index)
    assert "".join(d.text for d in result.deltas) == answer.answer


# --- no LLM there, or one that misbehaves on cue --------------------------------------------


def llm_attempt_seconds(answer: Answer) -> float:
    """Time spent on the answer beyond retrieval and evidence scoring: the LLM call, mostly."""
    t = answer.timings
    return t["total"] - t["retrieve"] - t["evidence"]


def test_closed_port_falls_back_to_extractive_immediately(
    engine: Engine, bundled_index: SearchIndex
) -> None:
    answerer = Answerer(engine, OpenAIChat(f"http://127.0.0.1:{free_port()}/v1", "qwen"))

    answer = stream(answerer, "通义千问三款主力模型最高降幅是多少?").answer

    assert answer.mode == "extractive"
    assert answer.fallback_reason is not None
    assert answer.fallback_reason == "LLM stream failed (connection failed or closed)"
    assert llm_attempt_seconds(answer) < 2.0
    assert_exact_citations(answer, bundled_index)
    assert any("85%" in c.quote for c in answer.citations)


class ScriptedChatServer:
    """``POST /v1/chat/completions`` on 127.0.0.1 streaming ``pieces`` as the reply.

    With ``drop=True`` the connection is cut after the last piece, in the middle of the chunked
    body, as a crashing server would leave it.
    """

    def __init__(self, pieces: list[str], *, drop: bool = False) -> None:
        self.pieces = pieces
        self.drop = drop
        self.requests: list[dict[str, object]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                script.requests.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in script.pieces:
                    choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    self._chunk(
                        {
                            "id": "scripted",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "scripted",
                            "choices": [choice],
                        }
                    )
                if script.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, event: object) -> None:
                text = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
                data = f"data: {text}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> ScriptedChatServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


Scripted = Callable[..., Answerer]


@pytest.fixture
def scripted(engine: Engine) -> Iterator[Scripted]:
    """``scripted(pieces, drop=False)`` -> an Answerer whose LLM streams exactly ``pieces``."""
    servers: list[ScriptedChatServer] = []

    def make(pieces: list[str], *, drop: bool = False) -> Answerer:
        server = ScriptedChatServer(pieces, drop=drop).__enter__()
        servers.append(server)
        return Answerer(engine, OpenAIChat(server.base_url, "scripted", timeout=10))

    yield make
    for server in servers:
        server.__exit__()


def test_llm_reply_is_verified_sentence_by_sentence(
    scripted: Scripted, bundled_index: SearchIndex
) -> None:
    # The markers are guesses, as a small model's are; the invented sentence is in no passage.
    answerer = scripted(["阿里云在2022年占中国云市场份额的36%。", "[5]", INVENTED, "[1]"])

    result = stream(answerer, "阿里云在2022年占中国云市场份额的多少?")

    answer = result.answer
    assert answer.mode == "llm"
    assert answer.answer == "阿里云在2022年占中国云市场份额的36%。[1]"
    assert [c.quote for c in answer.citations] == [SHARE]
    assert answer.unsupported == [f"{INVENTED} (check failed: no passage sentence is close to it)"]
    assert answer.faithfulness == 0.5
    assert check_answer(answer, bundled_index) == []
    assert "".join(d.text for d in result.deltas) == answer.answer


def test_llm_abstention_is_an_unanswerable_answer(scripted: Scripted) -> None:
    answerer = scripted(["文中", "未提及。"])

    result = stream(answerer, "腾讯云2022年在中国云市场的份额是多少?")

    answer = result.answer
    assert (answer.mode, answer.answerable, answer.citations) == ("llm", False, [])
    assert answer.answer == NOT_FOUND_ZH
    assert "".join(d.text for d in result.deltas) == answer.answer


def test_llm_dying_after_some_sentences_still_streams_the_final_answer(
    scripted: Scripted, bundled_index: SearchIndex
) -> None:
    answerer = scripted([f"{SHARE}[1]", "阿里云的关键词更像是“守业”。[1]", "而就在"], drop=True)

    result = stream(answerer, "阿里云在2022年占中国云市场份额的多少?")

    answer = result.answer
    assert check_answer(answer, bundled_index) == []
    assert "".join(d.text for d in result.deltas) == answer.answer
