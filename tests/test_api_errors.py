"""Bad input never reaches a 5xx or a stack trace: the error table, then schemathesis."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from rag.api.protocol import MAX_HEAD_BYTES
from rag.embedding import E5Embedder
from rag.index import IndexConfig, build_index
from rag.settings import Settings
from tests.api_server import LiveServer, api_settings, serve

pytest_plugins = ["tests.api_fixtures"]

LIMIT = Settings.model_fields["max_question_chars"].default
MAX_BODY = Settings.model_fields["max_body_bytes"].default
URL = Settings.model_fields["max_url_bytes"].default
MODEL = "qianwen-rag"
LONG_URL = "/api/documents/" + "a" * 100_000  # past the HTTP parser's own 65,535 bytes


def _chat(*messages: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": r, "content": c} for r, c in messages], **extra}


@dataclass(frozen=True)
class Bad:
    """One row of the table: a request and the status and message it must get."""

    id: str
    method: str
    path: str
    status: int
    message: str  # a substring of error.message
    body: Any = None  # JSON-encoded unless it is bytes
    headers: dict[str, str] = field(default_factory=dict)
    bug: str | None = None  # why the row gives a wrong or unclear result today

    def send(self, client: httpx.Client) -> httpx.Response:
        content = self.body if isinstance(self.body, bytes) else None
        if self.body is not None and content is None:
            content = json.dumps(self.body, ensure_ascii=False).encode()
        json_type = {"Content-Type": "application/json"} if content else {}
        headers = {**json_type, **self.headers}
        if len(self.path) > HTTPX_MAX_URL:
            return _send_raw(client, self.method, self.path, content, headers)
        return client.request(self.method, self.path, content=content, headers=headers)


HTTPX_MAX_URL = 65_536  # httpx refuses longer URLs itself; http.client sends them


def _send_raw(
    client: httpx.Client, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> httpx.Response:
    """Send with the standard library's client, for requests httpx will not make."""
    connection = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return httpx.Response(reply.status, headers=reply.getheaders(), content=reply.read())
    finally:
        connection.close()


ASK, SEARCH, CHAT = "/api/ask", "/api/search", "/v1/chat/completions"
OVER = "问" * (LIMIT + 1)
# A lone surrogate, as a JSON escape: valid JSON, but no encoder turns it into UTF-8.
SURROGATE = "\\ud800"
UNICODE = "not valid Unicode: character 1 is U+D800, a lone surrogate"
DEEP = b"[" * 1000 + b"]" * 1000  # over the JSON parser's recursion limit
NESTS = "the body nests too deeply"


def _escaped(body: Any, escape: str = SURROGATE) -> bytes:
    """``body`` as JSON with every "@" replaced by ``escape`` as written (not re-escaped)."""
    return json.dumps(body, ensure_ascii=False).replace("@", escape).encode()


def _nested(body: Any) -> bytes:
    """``body`` as JSON with its "@" replaced by 1,000 nested arrays."""
    return _escaped(body, DEEP.decode()).replace(b'"' + DEEP + b'"', DEEP)


TABLE = [
    Bad("empty-question", "POST", ASK, 400, "the question is empty", {"question": ""}),
    Bad("blank-question", "POST", ASK, 400, "the question is empty", {"question": " \n\t　"}),
    Bad("blank-query", "POST", SEARCH, 400, "the query is empty", {"query": "  "}),
    Bad("empty-chat", "POST", CHAT, 400, "the question is empty", _chat(("user", " "))),
    Bad(
        "long-question",
        "POST",
        ASK,
        400,
        f"the question is {LIMIT + 1} characters; the limit is {LIMIT}",
        {"question": OVER},
    ),
    Bad("long-query", "POST", SEARCH, 400, f"the limit is {LIMIT}", {"query": OVER}),
    Bad("long-chat", "POST", CHAT, 400, f"the limit is {LIMIT}", _chat(("user", OVER))),
    Bad(
        "long-chat-stream",
        "POST",
        CHAT,
        400,
        f"the limit is {LIMIT}",
        _chat(("user", OVER), stream=True),
    ),
    Bad(
        "body-too-large",
        "POST",
        ASK,
        413,
        f"request body over {MAX_BODY} bytes",
        {"question": "x" * (MAX_BODY + 1)},
    ),
    Bad("broken-json", "POST", ASK, 400, "not valid JSON", b'{"question": "x"'),
    Bad("broken-json-chat", "POST", CHAT, 400, "not valid JSON", b'{"model": "qianwen-rag",'),
    Bad(
        "not-utf8",
        "POST",
        ASK,
        400,
        "UTF-8",
        b'{"question": "\xff\xfe\xc3"}',
    ),
    Bad(
        "empty-body",
        "POST",
        ASK,
        400,
        "body",
        b"",
    ),
    Bad(
        "question-number",
        "POST",
        ASK,
        400,
        "question: Input should be a valid string",
        {"question": 1},
    ),
    Bad("body-array", "POST", ASK, 400, "valid dictionary", ["question"]),
    Bad("surrogate-question", "POST", ASK, 400, UNICODE, _escaped({"question": "@abc"})),
    Bad(
        "low-surrogate-question",
        "POST",
        ASK,
        400,
        "question: not valid Unicode: character 4 is U+DCFF",
        _escaped({"question": "abc@"}, "\\udcff"),
    ),
    Bad("surrogate-query", "POST", SEARCH, 400, UNICODE, _escaped({"query": "@abc"})),
    Bad("surrogate-chat", "POST", CHAT, 400, UNICODE, _escaped(_chat(("user", "@abc")))),
    Bad(
        "surrogate-chat-stream",
        "POST",
        CHAT,
        400,
        UNICODE,
        _escaped(_chat(("user", "@abc"), stream=True)),
    ),
    Bad(
        "surrogate-chat-part",
        "POST",
        CHAT,
        400,
        f"messages.0: {UNICODE}",
        _escaped(_chat(("user", [{"type": "text", "text": "@abc"}]))),
    ),
    Bad(
        "surrogate-earlier-turn",
        "POST",
        CHAT,
        400,
        f"messages.0: {UNICODE}",
        _escaped(_chat(("user", "@abc"), ("assistant", "好"), ("user", "那2024年呢?"))),
    ),
    Bad("deep-json-value", "POST", ASK, 400, NESTS, _nested({"question": "@"})),
    Bad("deep-json-extra", "POST", ASK, 400, NESTS, _nested({"question": "x", "a": "@"})),
    Bad("deep-json-search", "POST", SEARCH, 400, NESTS, _nested({"query": "@"})),
    Bad("deep-json-chat", "POST", CHAT, 400, NESTS, _nested(_chat(("user", "x"), x="@"))),
    Bad("deep-json-array", "POST", CHAT, 400, NESTS, DEEP),
    Bad("messages-string", "POST", CHAT, 400, "messages", {"model": MODEL, "messages": "hi"}),
    Bad("content-numbers", "POST", CHAT, 400, "messages.0.content", _chat(("user", [1, 2]))),
    Bad(
        "top-k-word",
        "POST",
        ASK,
        400,
        "top_k: Input should be a valid integer",
        {"question": "阿里云", "top_k": "many"},
    ),
    Bad(
        "top-k-bool",
        "POST",
        SEARCH,
        400,
        "top_k",
        {"query": "阿里云", "top_k": True},
    ),
    Bad(
        "extra-field",
        "POST",
        ASK,
        400,
        "k: Extra inputs are not permitted",
        {"question": "阿里云", "k": 3},
    ),
    Bad(
        "bad-mode",
        "POST",
        ASK,
        400,
        "mode: Input should be",
        {"question": "阿里云", "mode": "fast"},
    ),
    Bad(
        "ask-top-k-0",
        "POST",
        ASK,
        400,
        "top_k: Input should be greater than or equal to 1",
        {"question": "阿里云", "top_k": 0},
    ),
    Bad(
        "ask-top-k-21",
        "POST",
        ASK,
        400,
        "top_k: Input should be less than or equal to 20",
        {"question": "阿里云", "top_k": 21},
    ),
    Bad(
        "search-top-k-0",
        "POST",
        SEARCH,
        400,
        "greater than or equal to 1",
        {"query": "阿里云", "top_k": 0},
    ),
    Bad(
        "search-top-k-51",
        "POST",
        SEARCH,
        400,
        "less than or equal to 50",
        {"query": "阿里云", "top_k": 51},
    ),
    Bad("chat-top-k-21", "POST", CHAT, 400, "top_k", _chat(("user", "阿里云"), top_k=21)),
    Bad(
        "unknown-model",
        "POST",
        CHAT,
        404,
        "model 'gpt-4o' does not exist; GET /v1/models lists: qianwen-rag",
        {**_chat(("user", "阿里云")), "model": "gpt-4o"},
    ),
    Bad(
        "unknown-model-stream",
        "POST",
        CHAT,
        404,
        "model 'gpt-4o' does not exist",
        {**_chat(("user", "阿里云"), stream=True), "model": "gpt-4o"},
    ),
    Bad(
        "last-is-assistant",
        "POST",
        CHAT,
        400,
        "the last message must be a user message",
        _chat(("user", "阿里云"), ("assistant", "好的")),
    ),
    Bad(
        "only-system",
        "POST",
        CHAT,
        400,
        "the last message must be a user message",
        _chat(("system", "你是助手")),
    ),
    Bad("no-messages", "POST", CHAT, 400, "messages: List should have at least 1 item", _chat()),
    Bad("bad-role", "POST", CHAT, 400, "messages.0.role", _chat(("robot", "阿里云"))),
    Bad("unknown-document", "GET", "/api/documents/nope.txt", 404, "no document 'nope.txt'"),
    # The document route takes any character: a newline reaches it (and is not found here).
    Bad("newline-document", "GET", "/api/documents/no%0Asuch.txt", 404, "'no\\nsuch.txt'"),
    Bad("url-100k", "GET", LONG_URL, 414, f"the URL is {len(LONG_URL)} bytes; the limit is {URL}"),
    Bad("query-100k", "GET", "/v1/models?q=" + "a" * 100_000, 414, f"the limit is {URL}"),
    Bad("url-over-limit", "POST", f"{ASK}?{'x' * URL}", 414, "the URL is", {"question": "x"}),
    Bad("unknown-path", "GET", "/nope", 404, "Not Found"),
    Bad("unknown-v1-path", "GET", "/v1/nope", 404, "Not Found"),
    Bad("get-ask", "GET", ASK, 405, "Method Not Allowed"),
    Bad("delete-chat", "DELETE", CHAT, 405, "Method Not Allowed"),
    Bad("post-models", "POST", "/v1/models", 405, "Method Not Allowed"),
]


def _rows(with_bugs: bool) -> list[Any]:
    return [
        pytest.param(row, id=row.id, marks=pytest.mark.xfail(strict=True, reason=row.bug))
        if row.bug and with_bugs
        else pytest.param(row, id=row.id)
        for row in TABLE
    ]


@pytest.fixture(scope="module")
def client(api_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=60) as c:
        yield c


@pytest.mark.parametrize("row", _rows(with_bugs=True))
def test_bad_input_gets_a_clear_error(client: httpx.Client, row: Bad) -> None:
    response = row.send(client)

    assert response.status_code == row.status, response.text[:300]
    error = response.json()["error"]
    assert row.message in error["message"]
    assert error["type"] and error["code"]
    if row.status == 405:
        assert row.method not in response.headers["allow"]


@pytest.mark.parametrize("row", _rows(with_bugs=False))
def test_bad_input_is_never_a_server_error(client: httpx.Client, row: Bad) -> None:
    response = row.send(client)

    assert response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "code"}
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert response.headers["x-request-id"]


def test_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    """Without Content-Length the middleware counts the bytes as they arrive."""

    def body() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(ASK, content=body(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


# Questions without words: the answer layer says "not found" (a 200), never a 5xx.
WORDLESS = ["\u200b\u200b\u200d", "？？？", "😀", "...", "\u200b？\ufeff"]


@pytest.mark.parametrize("question", WORDLESS, ids=["zero-width", "marks", "emoji", "dots", "mix"])
def test_a_question_without_words_is_not_found(client: httpx.Client, question: str) -> None:
    asked = client.post(ASK, json={"question": question, "mode": "extractive"})
    chat = client.post(CHAT, json=_chat(("user", question)))
    searched = client.post(SEARCH, json={"query": question})

    assert asked.status_code == 200, asked.text[:300]
    answer = asked.json()
    assert answer["outcome"] == "none"
    assert answer["answerable"] is False and answer["citations"] == []
    assert answer["unsupported"] == ["the question has no words"]
    assert chat.status_code == 200, chat.text[:300]
    assert chat.json()["rag"]["outcome"] == "none"
    assert chat.json()["citations"] == []
    assert searched.status_code == 200, searched.text[:300]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("body over the limit", 413, f"request body over {MAX_BODY} bytes"),
        ("question sent as a file", 400, "question: Input should be a valid string"),
    ],
)
def test_form_errors_before_the_form_runs_are_pages(
    client: httpx.Client, case: str, status: int, message: str
) -> None:
    """The no-JavaScript form's browser shows the response: an error is the page, not JSON."""
    if case == "body over the limit":
        response = client.post("/ask", content=b"question=" + b"x" * MAX_BODY, headers=FORM)
    else:
        response = client.post("/ask", files={"question": ("q.txt", "阿里云".encode())})

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert f"出错了：{message}" in response.text
    assert response.headers["x-request-id"]


def test_openai_errors_use_the_openai_envelope(client: httpx.Client) -> None:
    response = client.post(CHAT, json={**_chat(("user", "阿里云")), "model": "gpt-4o"})

    assert response.json() == {
        "error": {
            "message": "model 'gpt-4o' does not exist; GET /v1/models lists: "
            "qianwen-rag, qianwen-rag-extractive",
            "type": "not_found_error",
            "code": "not_found",
        }
    }


def test_openapi_documents_the_errors_actually_sent(client: httpx.Client) -> None:
    responses = client.get("/openapi.json").json()["paths"][ASK]["post"]["responses"]

    assert "400" in responses
    assert "422" not in responses


# --- refusals before routing: CORS, rate limit, slow clients --------------------------------

ORIGIN = "https://app.example"
KEYS = ("k1", "k2")
READ_TIMEOUT = 1.0  # seconds the guarded server waits for headers, then for a body
RATE = 3  # requests per minute per client on the rate-limited server


@pytest.fixture(scope="module")
def guarded(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    """Keys, CORS for one origin and a short read timeout."""
    settings = api_settings(
        api_index_dir, api_keys=",".join(KEYS), cors_origins=ORIGIN, read_timeout=READ_TIMEOUT
    )
    with serve(settings, e5) as server:
        yield server


@pytest.fixture(scope="module")
def limited(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    settings = api_settings(
        api_index_dir, api_keys=",".join(KEYS), cors_origins=ORIGIN, rate_limit=f"{RATE}/minute"
    )
    with serve(settings, e5) as server:
        yield server


AUTH = {"Authorization": f"Bearer {KEYS[0]}", "Origin": ORIGIN}


@pytest.fixture(scope="module")
def hardened(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    """Every guard on at once, for the generated requests: keys, CORS, a (generous) rate
    limit and a single answer slot, so long and short questions queue behind each other."""
    settings = api_settings(
        api_index_dir,
        api_keys=",".join(KEYS),
        cors_origins=ORIGIN,
        rate_limit="100000/minute",
        answer_slots=1,
    )
    with serve(settings, e5) as server:
        yield server


REFUSALS = [
    Bad("no-key", "POST", ASK, 401, "API key", {"question": "x"}, {"Origin": ORIGIN}),
    Bad("too-large", "POST", ASK, 413, "request body over", {"question": "x" * MAX_BODY}, AUTH),
    Bad("url-too-long", "GET", f"/api/documents/{'a' * URL}", 414, "the URL is", None, AUTH),
    Bad("url-100k", "GET", LONG_URL, 414, "the URL is", None, AUTH),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in REFUSALS])
def test_refusals_carry_cors_headers(guarded: LiveServer, row: Bad) -> None:
    """A browser shows a refusal's status only if the refusal carries the CORS headers."""
    with httpx.Client(base_url=guarded.url, timeout=60) as c:
        response = row.send(c)

    assert response.status_code == row.status, response.text[:300]
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert row.message in response.json()["error"]["message"]
    assert response.headers["x-request-id"]


def test_rate_limit_answers_429_with_retry_after(limited: LiveServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=60) as c:
        first_key = [c.get("/v1/models", headers=AUTH) for _ in range(RATE + 1)]
        other_key = c.get("/v1/models", headers={"Authorization": f"Bearer {KEYS[1]}"})
        health = c.get("/healthz")

    assert [r.status_code for r in first_key] == [200] * RATE + [429]
    refused = first_key[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "too many requests" in refused.json()["error"]["message"]
    assert other_key.status_code == 200  # each key has its own budget
    assert health.status_code == 200  # probes are not counted


def test_rate_limited_form_gets_the_page(limited: LiveServer) -> None:
    """The no-JavaScript form's browser shows the response: a 429 is the page, not JSON."""
    with httpx.Client(base_url=limited.url, timeout=60) as c:
        posts = [c.post("/ask", data={"question": "阿里云"}) for _ in range(RATE + 1)]

    refused = posts[-1]
    assert all(r.status_code != 429 for r in posts[:RATE])
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "出错了：too many requests" in refused.text
    assert int(refused.headers["retry-after"]) >= 1


def _exchange(url: str, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` on a raw socket and read until the server closes (or a generous bound).

    Returns what came back and whether the server closed the connection itself.
    """
    port = int(url.rsplit(":", 1)[1])
    bound = 3 * READ_TIMEOUT + 5  # generous: this checks that it ends, not how fast
    with socket.create_connection(("127.0.0.1", port), timeout=bound) as sock:
        if data:
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
    return received, True


SLOW = {
    "silent": b"",
    "half-headers": b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: appl",
    "half-body": (
        b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer k1\r\nContent-Length: 100\r\n\r\n" + b'{"question": "'
    ),
}


@pytest.mark.parametrize("case", SLOW)
def test_slow_clients_get_a_408_and_the_connection_closes(guarded: LiveServer, case: str) -> None:
    received, closed = _exchange(guarded.url, SLOW[case])

    assert closed, f"the server still held the connection: {received[:200]!r}"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received[:300]
    assert b"application/json" in head.lower()
    assert "did not arrive within 1 seconds" in json.loads(body)["error"]["message"]


def test_a_huge_request_head_gets_a_431(guarded: LiveServer) -> None:
    """Headers are buffered until complete: past 1 MiB the server stops reading them."""
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: "
    # One byte over, and no more: the server reads every byte before it answers and closes
    # (unread bytes would make the close a reset, which can drop the answer).
    head = start + b"a" * (MAX_HEAD_BYTES + 1 - len(start))
    received, closed = _exchange(guarded.url, head)

    assert closed
    status, _, body = received.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431 "), received[:300]
    assert "headers are over" in json.loads(body)["error"]["message"]


# --- a document whose file name holds a newline ---------------------------------------------

NEWLINE_DOC = "line\nbreak.txt"


@pytest.fixture(scope="module")
def newline_server(
    tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("newline")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / NEWLINE_DOC).write_text(
        "磐久服务器发布\n2024-09-19\n\n阿里云发布新一代磐久服务器。新服务器单机支持16卡GPU。\n",
        encoding="utf-8",
    )
    (corpus / "other.txt").write_text(
        "数据中心投入使用\n2024-06-01\n\n乌兰察布数据中心正式投入使用。\n", encoding="utf-8"
    )
    build_index(IndexConfig(corpus, root / "index"), e5)
    with serve(api_settings(root / "index", corpus_dir=corpus), e5) as server:
        yield server


def test_a_cited_document_with_a_newline_in_its_name_opens(newline_server: LiveServer) -> None:
    with httpx.Client(base_url=newline_server.url, timeout=60) as c:
        listed = [d["id"] for d in c.get("/api/documents").json()["documents"]]
        answer = c.post(ASK, json={"question": "磐久服务器单机支持多少卡GPU?"}).json()
        cited = answer["citations"][0]
        opened = c.get(f"/api/documents/{quote(cited['doc'], safe='')}")

    assert NEWLINE_DOC in listed
    assert cited["doc"] == NEWLINE_DOC
    assert opened.status_code == 200, opened.text[:300]
    document = opened.json()
    assert document["id"] == NEWLINE_DOC
    assert document["text"][cited["start"] : cited["end"]] == cited["quote"]


# --- schemathesis: generated requests from the live server's schema -------------------------


@pytest.fixture
def live_schema(api_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_never_get_a_server_error(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error], timeout=60)


@pytest.fixture
def hardened_live_schema(hardened: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{hardened.url}/openapi.json", headers=AUTH)


hardened_schema = schemathesis.pytest.from_fixture("hardened_live_schema")


@pytest.mark.slow
@hardened_schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_to_a_guarded_server_never_get_a_server_error(case: Any) -> None:
    """Keys, CORS, a rate limit, one answer slot: the same requests, no 5xx either."""
    response = case.call_and_validate(checks=[not_a_server_error], headers=AUTH, timeout=60)

    assert response.status_code != 401, "the generated request did not carry the key"
    assert response.headers.get("access-control-allow-origin") == [ORIGIN]
