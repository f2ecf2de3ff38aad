"""The HTTP API on a real uvicorn server: the ``openai`` client for chat, httpx for the rest."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rag.citations import MARKER
from rag.embedding import E5Embedder
from rag.settings import BUNDLED_CORPUS, Settings
from tests.api_server import LiveServer, api_settings, serve

pytest_plugins = ["tests.api_fixtures"]

MODEL = "qianwen-rag"
UNIVERSAL = "通用Universal实例相比上一代主售实例最高降价多少?"
UNIVERSAL_DOC = "000_64977604fa216111.txt"
QWEN_DOC = "001_bc9c23b05ece68e4.txt"
ORIGIN = "https://app.example"
TIMEOUT = 60.0  # generous: the machine running the tests may be busy


@pytest.fixture(scope="module")
def client(api_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def oai(api_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{api_server.url}/v1", api_key="test", max_retries=0, timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def texts(client: httpx.Client) -> dict[str, str]:
    """Every article's text as the API serves it (citation offsets index into these)."""
    ids = [d["id"] for d in client.get("/api/documents").json()["documents"]]
    return {doc: client.get(f"/api/documents/{doc}").json()["text"] for doc in ids}


def assert_cited(content: str, citations: list[dict[str, Any]], texts: dict[str, str]) -> None:
    """``[n]`` markers match the citation ids and every quote is its document's exact slice."""
    assert citations, content
    assert {int(n) for n in MARKER.findall(content)} == {c["id"] for c in citations}
    for c in citations:
        assert texts[c["doc"]][c["start"] : c["end"]] == c["quote"], c


def chat(oai: openai.OpenAI, *turns: str, **kwargs: Any) -> Any:
    """A chat completion for alternating user/assistant turns (the last one is the user's)."""
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]
    return oai.chat.completions.create(model=MODEL, messages=messages, **kwargs)  # type: ignore[arg-type]


# --- Chat Completions through the official client ---------------------------------------------


def test_chat_answer_cites_exact_quotes(oai: openai.OpenAI, texts: dict[str, str]) -> None:
    completion = chat(oai, UNIVERSAL)

    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content or ""
    assert "40%" in content
    citations = completion.model_extra["citations"]
    assert_cited(content, citations, texts)
    assert {c["doc"] for c in citations} == {UNIVERSAL_DOC}
    rag = completion.model_extra["rag"]
    assert rag["answerable"] is True
    assert rag["mode"] == "extractive"
    assert rag["rewritten_question"] is None
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_chat_stream_matches_the_plain_answer(oai: openai.OpenAI, texts: dict[str, str]) -> None:
    plain = chat(oai, UNIVERSAL)

    chunks = list(chat(oai, UNIVERSAL, stream=True))

    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices[0].delta.content]) >= 1
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert last.model_extra["citations"] == plain.model_extra["citations"]
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])
    assert_cited(content, last.model_extra["citations"], texts)


def test_chat_stream_raw_sse_ends_with_done(client: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": UNIVERSAL}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode("utf-8")

    events = [e for e in raw.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), raw
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["citations"]
    assert raw.endswith("data: [DONE]\n\n")


def test_follow_up_swaps_the_year(oai: openai.OpenAI, texts: dict[str, str]) -> None:
    first = chat(oai, "阿里云在2023年做了什么开源动作?")
    first_content = first.choices[0].message.content or ""
    assert "2023" in first.model_extra["citations"][0]["quote"]

    follow = chat(oai, "阿里云在2023年做了什么开源动作?", first_content, "那2024年呢?")

    assert follow.model_extra["rag"]["rewritten_question"] == "阿里云在2024年做了什么开源动作?"
    content = follow.choices[0].message.content or ""
    citations = follow.model_extra["citations"]
    assert_cited(content, citations, texts)
    assert citations[0]["doc"] == QWEN_DOC
    assert "2024" in citations[0]["quote"]


def test_streamed_follow_up_reports_the_rewrite(oai: openai.OpenAI) -> None:
    chunks = list(chat(oai, "阿里云在2023年做了什么开源动作?", "…", "那2024年呢?", stream=True))

    rag = chunks[-1].model_extra["rag"]
    assert rag["rewritten_question"] == "阿里云在2024年做了什么开源动作?"


def test_follow_up_about_a_new_subject_cites_its_article(
    oai: openai.OpenAI, texts: dict[str, str]
) -> None:
    first = chat(oai, UNIVERSAL)

    follow = chat(oai, UNIVERSAL, first.choices[0].message.content, "那通义千问三款主力模型呢?")

    assert follow.model_extra["rag"]["rewritten_question"]
    content = follow.choices[0].message.content or ""
    assert_cited(content, follow.model_extra["citations"], texts)
    assert "85%" in content
    assert {c["doc"] for c in follow.model_extra["citations"]} == {QWEN_DOC}


def test_models_lists_the_answer_modes(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]

    # No LLM is configured, so only the extractive modes are on offer.
    assert ids == [MODEL, f"{MODEL}-extractive"]


def test_unknown_model_is_not_found(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": UNIVERSAL}]
        )

    error = caught.value.response.json()["error"]
    assert error["type"] == "not_found_error"
    assert "gpt-4o" in error["message"] and MODEL in error["message"]


# --- Plain JSON endpoints ------------------------------------------------------------------


def test_ask_answers_with_exact_citations(client: httpx.Client, texts: dict[str, str]) -> None:
    response = client.post("/api/ask", json={"question": UNIVERSAL, "top_k": 3})

    assert response.status_code == 200
    answer = response.json()
    assert answer["question"] == UNIVERSAL
    assert answer["answerable"] is True
    assert answer["mode"] == "extractive"
    assert "40%" in answer["answer"]
    assert_cited(answer["answer"], answer["citations"], texts)
    assert answer["timings"]["total"] > 0


def test_ask_abstains_when_the_articles_do_not_say(client: httpx.Client) -> None:
    question = "Qwen2.5-72B在MMLU基准测试上的得分是多少?"

    response = client.post("/api/ask", json={"question": question})

    assert response.status_code == 200
    answer = response.json()
    assert answer["answerable"] is False
    assert answer["citations"] == []
    assert answer["answer"] == "文中未提及。"


def test_search_returns_source_slices(client: httpx.Client, texts: dict[str, str]) -> None:
    response = client.post("/api/search", json={"query": UNIVERSAL, "top_k": 4})

    assert response.status_code == 200
    result = response.json()
    assert result["query"] == UNIVERSAL
    hits = result["hits"]
    assert 1 <= len(hits) <= 4
    assert hits[0]["doc"] == UNIVERSAL_DOC
    assert "Universal" in hits[0]["text"]
    for hit in hits:
        assert texts[hit["doc"]][hit["start"] : hit["end"]] == hit["text"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_documents_list_and_fetch(client: httpx.Client) -> None:
    listed = client.get("/api/documents").json()["documents"]

    assert sorted(d["id"] for d in listed) == sorted(p.name for p in BUNDLED_CORPUS.iterdir())
    for summary in listed:
        assert summary["title"] and summary["chunks"] > 0
        doc = client.get(f"/api/documents/{summary['id']}").json()
        source = (BUNDLED_CORPUS / summary["id"]).read_bytes().decode("utf-8")
        assert doc["text"] == source
        assert {k: doc[k] for k in summary} == summary


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}

    ready = client.get("/readyz")

    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["chunks"] > 0 and body["built_at"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus samples keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_and_latency(client: httpx.Client) -> None:
    client.post("/api/search", json={"query": UNIVERSAL})
    client.post("/api/ask", json={"question": UNIVERSAL})
    client.get("/no/such/path")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    for route in ("/api/search", "/api/ask"):
        key = (
            "rag_http_requests_total",
            (("method", "POST"), ("route", route), ("status", "200")),
        )
        assert samples[key] >= 1
        assert samples[("rag_http_request_seconds_count", (("route", route),))] >= 1
        assert samples[("rag_http_request_seconds_bucket", (("le", "+Inf"), ("route", route)))] >= 1
    unmatched = ("method", "GET"), ("route", "unmatched"), ("status", "404")
    assert samples[("rag_http_requests_total", unmatched)] >= 1
    assert samples[("rag_retrieval_seconds_count", ())] >= 1
    assert samples[("rag_answers_total", (("answerable", "true"), ("mode", "extractive")))] >= 1
    assert ("rag_index_swaps_total", ()) in samples


def test_the_server_embeds_queries_with_the_configured_slots(
    api_server: LiveServer, api_index_dir: Path, e5: E5Embedder
) -> None:
    """RAG_EMBED_SLOTS reaches the served retriever (the default too: one slot per core)."""
    cores = os.cpu_count() or 1
    served = api_server.app.state.service.answerer.engine.retriever.batcher
    assert Settings().embed_slots == 0
    assert (served.slots, served.threads) == (cores, 1)
    with serve(api_settings(api_index_dir, embed_slots=1), e5) as server:
        one = server.app.state.service.answerer.engine.retriever.batcher
        assert (one.slots, one.threads) == (1, cores)


def test_metrics_count_query_embeddings_and_the_passes_that_made_them(
    client: httpx.Client,
) -> None:
    """A new question is embedded once (one more embedding); one asked again is not."""

    def counts() -> tuple[float, float]:
        samples = _samples(client.get("/metrics").text)
        return (
            samples[("rag_query_embeddings_total", ())],
            samples[("rag_query_embedding_passes_total", ())],
        )

    before = counts()
    new = f"{UNIVERSAL} (metrics {id(before)})"
    assert client.post("/api/search", json={"query": new}).status_code == 200
    middle = counts()
    assert client.post("/api/search", json={"query": new}).status_code == 200
    after = counts()

    assert middle == (before[0] + 1, before[1] + 1)
    assert after == middle  # the query-vector cache answered


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    first = client.get("/healthz")
    second = client.get("/api/documents/missing.txt")

    assert echoed.headers["x-request-id"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert second.status_code == 404


@pytest.mark.slow
def test_question_at_the_length_limit_is_answered(
    client: httpx.Client, api_server: LiveServer
) -> None:
    limit = api_server.app.state.settings.max_question_chars
    question = ("阿里云的通用Universal实例降价了多少?" * limit)[:limit]

    response = client.post("/api/ask", json={"question": question}, timeout=120)

    assert response.status_code == 200
    assert response.json()["question"] == question


# --- API keys and CORS: servers with their own settings -------------------------------------


@pytest.fixture(scope="module")
def secured_server(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    """Keys from the environment, as a deployment sets them; CORS open to one origin."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAG_API_KEYS", "k1,k2")
        env.setenv("RAG_CORS_ORIGINS", ORIGIN)
        settings = Settings(index_dir=api_index_dir, llm_base_url=None)
    assert settings.api_key_list == ["k1", "k2"]
    with serve(settings, e5) as server:
        yield server


@pytest.fixture(scope="module")
def cors_server(api_index_dir: Path, e5: E5Embedder) -> Iterator[LiveServer]:
    with serve(api_settings(api_index_dir, cors_origins=ORIGIN), e5) as server:
        yield server


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Bearer k1x"}, 401),
        ({"Authorization": "k1"}, 401),
        ({"Authorization": "Bearer k1"}, 200),
        ({"Authorization": "Bearer k2"}, 200),
    ],
    ids=["none", "wrong", "longer-key", "no-scheme", "k1", "k2"],
)
def test_api_keys_guard_the_api(
    secured_server: LiveServer, headers: dict[str, str], status: int
) -> None:
    with httpx.Client(base_url=secured_server.url, timeout=TIMEOUT) as c:
        search = c.post("/api/search", json={"query": UNIVERSAL}, headers=headers)
        models = c.get("/v1/models", headers=headers)

    assert (search.status_code, models.status_code) == (status, status)
    if status == 401:
        assert search.headers["www-authenticate"] == "Bearer"
        error = search.json()["error"]
        assert error["type"] == "authentication_error"
        assert "API key" in error["message"]


def test_api_keys_leave_health_checks_open(secured_server: LiveServer) -> None:
    with httpx.Client(base_url=secured_server.url, timeout=TIMEOUT) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_openai_client_sends_the_key(secured_server: LiveServer) -> None:
    url = f"{secured_server.url}/v1"
    good = openai.OpenAI(base_url=url, api_key="k2", max_retries=0, timeout=TIMEOUT)
    bad = openai.OpenAI(base_url=url, api_key="k3", max_retries=0, timeout=TIMEOUT)

    assert MODEL in [m.id for m in good.models.list()]
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def _preflight(url: str) -> httpx.Response:
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    return httpx.options(f"{url}/api/search", headers=headers, timeout=TIMEOUT)


def test_cors_is_closed_by_default(client: httpx.Client, api_server: LiveServer) -> None:
    simple = client.get("/api/documents", headers={"Origin": ORIGIN})
    preflight = _preflight(api_server.url)

    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_opens_to_the_configured_origin(cors_server: LiveServer) -> None:
    with httpx.Client(base_url=cors_server.url, timeout=TIMEOUT) as c:
        allowed = c.get("/api/documents", headers={"Origin": ORIGIN})
        other = c.get("/api/documents", headers={"Origin": "https://other.example"})
    preflight = _preflight(cors_server.url)

    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_cors_with_keys_allows_keyed_requests(secured_server: LiveServer) -> None:
    response = httpx.get(
        f"{secured_server.url}/api/documents",
        headers={"Origin": ORIGIN, "Authorization": "Bearer k1"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_cors_preflight_passes_when_keys_are_set(secured_server: LiveServer) -> None:
    preflight = _preflight(secured_server.url)

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
