"""Concurrent requests while ``rag index`` rebuilds: nothing fails, and no answer mixes builds.

Every sentence of the old corpus carries the word :data:`OLD`, every sentence of the new one
:data:`NEW` (of another length, so old offsets do not fit new text). A response whose passages
carry both words, or whose offsets do not fit its corpus, came from a mixed index.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rag.embedding import E5Embedder
from rag.index import IndexConfig, build_index
from tests.api_server import api_settings, serve

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.api_fixtures"]

OLD, NEW = "琥珀", "翡翠青"
ADDED = "zz_added.txt"
# {m} is the generation's marker word; one per sentence, so every passage and quote holds one.
ARTICLES = {
    "datacenter.txt": (
        "{m}乌兰察布数据中心投入使用\n2024-06-01\n\n"
        "{m}快讯，阿里云乌兰察布数据中心正式投入使用。"
        "{m}快讯，该数据中心可以容纳12万台服务器。"
        "{m}快讯，数据中心主要使用风电和光伏供电。\n"
    ),
    "price.txt": (
        "{m}通义千问主力模型降价\n2024-09-20\n\n"
        "{m}快讯，通义千问三款主力模型再次大幅降价。"
        "{m}快讯，最高降幅达到85%。"
        "{m}快讯，每百万tokens的价格低至0.3元。\n"
    ),
    "server.txt": (
        "{m}磐久服务器发布\n2024-09-19\n\n"
        "{m}快讯，阿里云在云栖大会上发布新一代磐久服务器。"
        "{m}快讯，新服务器单机支持16卡GPU。"
        "{m}快讯，服务器用AI算法预测硬件故障。\n"
    ),
    "opensource.txt": (
        "{m}开源模型下载量突破4000万\n2024-09-21\n\n"
        "{m}快讯，Qwen系列模型的全球下载量超过4000万。"
        "{m}快讯，衍生模型总数超过5万个。\n"
    ),
}
ADDED_ARTICLE = (
    "{m}杭州新园区开工\n2024-10-01\n\n"
    "{m}快讯，阿里云杭州新园区今天开工。"
    "{m}快讯，园区计划三年内建成。\n"
)
QUESTIONS = [
    "乌兰察布数据中心可以容纳多少台服务器?",
    "通义千问主力模型最高降幅是多少?",
    "磐久服务器单机支持多少卡GPU?",
    "Qwen系列模型的全球下载量是多少?",
    "数据中心主要使用什么能源供电?",
]
THREADS = 6
WARMUP_SECONDS = 1.0  # load before the rebuild starts
AFTER_SWAP_SECONDS = 1.5  # load after the new build is seen


def write_corpus(folder: Path, marker: str, added: bool) -> dict[str, str]:
    """Write the articles with ``marker``; returns their texts by document id."""
    folder.mkdir(parents=True)
    articles = dict(ARTICLES, **({ADDED: ADDED_ARTICLE} if added else {}))
    texts = {name: text.format(m=marker) for name, text in articles.items()}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return texts


@dataclass
class Record:
    kind: str
    status: int | None = None
    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class SwapRun:
    records: list[Record]
    corpora: dict[str, dict[str, str]]  # marker -> doc id -> text
    rebuild: subprocess.CompletedProcess[str]
    documents_after: list[str]
    metrics_after: str
    swaps: int
    seconds: float


def hammer(url: str, kind: str, stop: threading.Event, out: list[Record]) -> None:
    """Send one kind of request in a loop until ``stop``; record every outcome."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for question in itertools.cycle(QUESTIONS):
            if stop.is_set():
                return
            record = Record(kind)
            try:
                if kind == "search":
                    response = client.post("/api/search", json={"query": question, "top_k": 3})
                else:
                    response = client.post("/api/ask", json={"question": question})
                record.status = response.status_code
                record.body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                record.error = f"{type(exc).__name__}: {exc}"
            out.append(record)


def wait_for_document(client: httpx.Client, doc: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = [d["id"] for d in client.get("/api/documents").json()["documents"]]
        if doc in ids:
            return ids
        time.sleep(0.1)
    raise AssertionError(f"{doc} did not appear within {timeout}s")


@pytest.fixture(scope="module")
def swap_run(
    tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder, rag_env: dict[str, str]
) -> Iterator[SwapRun]:
    """Serve the old corpus, rebuild with the new one under load, and record everything."""
    root = tmp_path_factory.mktemp("hot-swap")
    corpora = {
        OLD: write_corpus(root / "old", OLD, added=False),
        NEW: write_corpus(root / "new", NEW, added=True),
    }
    index_dir = root / "index"
    build_index(IndexConfig(root / "old", index_dir), e5)
    records: list[Record] = []
    stop = threading.Event()
    with serve(api_settings(index_dir, corpus_dir=root / "old"), e5) as server:
        threads = [
            threading.Thread(target=hammer, args=(server.url, kind, stop, records), daemon=True)
            for kind in ["search", "ask"] * (THREADS // 2)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            time.sleep(WARMUP_SECONDS)
            command = ["index", "-q", "--corpus", root / "new", "--index-dir", index_dir]
            rebuild = subprocess.run(
                [sys.executable, "-m", "rag", *map(str, command)],
                cwd=root,
                env=rag_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            with httpx.Client(base_url=server.url, timeout=60) as client:
                if rebuild.returncode == 0:
                    wait_for_document(client, ADDED, timeout=30)
                time.sleep(AFTER_SWAP_SECONDS)
                stop.set()
                for thread in threads:
                    thread.join(60)
                documents = [d["id"] for d in client.get("/api/documents").json()["documents"]]
                metrics = client.get("/metrics").text
        finally:
            stop.set()
        yield SwapRun(
            records=records,
            corpora=corpora,
            rebuild=rebuild,
            documents_after=documents,
            metrics_after=metrics,
            swaps=server.app.state.service.swaps,
            seconds=time.monotonic() - started,
        )


def spans(record: Record) -> list[dict[str, Any]]:
    """The passages a response shows, as {doc, title, text, start, end}."""
    assert record.body is not None
    if record.kind == "search":
        return list(record.body["hits"])
    return [{**c, "text": c["quote"]} for c in record.body["citations"]]


def generation(span: dict[str, Any]) -> str:
    found = {m for m in (OLD, NEW) if m in span["text"] and m in span["title"]}
    assert len(found) == 1, span
    return found.pop()


def test_the_rebuild_ran_and_requests_kept_coming(swap_run: SwapRun) -> None:
    assert swap_run.rebuild.returncode == 0, swap_run.rebuild.stderr[-2000:]
    kinds = {r.kind for r in swap_run.records}
    assert kinds == {"search", "ask"}
    assert len(swap_run.records) >= 20, f"{len(swap_run.records)} in {swap_run.seconds:.1f}s"


def test_no_request_failed_during_the_rebuild(swap_run: SwapRun) -> None:
    failed = [r for r in swap_run.records if r.error or r.status != 200]

    assert not failed, failed[:5]


def test_every_response_comes_from_one_complete_index(swap_run: SwapRun) -> None:
    seen: dict[str, int] = {OLD: 0, NEW: 0}
    for record in swap_run.records:
        shown = spans(record)
        generations = {generation(s) for s in shown}
        assert len(generations) <= 1, (record.kind, shown)
        for span in shown:
            text = swap_run.corpora[generation(span)][span["doc"]]
            assert text[span["start"] : span["end"]] == span["text"], span
        for marker in generations:
            seen[marker] += 1

    cited = [r for r in swap_run.records if r.kind == "ask" and r.body and r.body["citations"]]
    print(f"{len(swap_run.records)} responses, {swap_run.seconds:.1f}s: {seen}, {len(cited)} cited")
    # Both builds answered: the run really spanned the swap.
    assert seen[OLD] > 0 and seen[NEW] > 0, seen
    assert cited, "no answer cited anything"


def test_the_server_swapped_to_the_new_build(swap_run: SwapRun) -> None:
    assert ADDED in swap_run.documents_after
    assert sorted(swap_run.documents_after) == sorted(swap_run.corpora[NEW])
    assert swap_run.swaps >= 1


def test_the_swap_is_counted_in_metrics(swap_run: SwapRun) -> None:
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(swap_run.metrics_after)
        for s in family.samples
    }

    assert samples["rag_index_swaps_total"] >= 1


# --- answer slots: long and short questions at once ----------------------------------------

LONG_QUESTION = ("阿里云乌兰察布数据中心的服务器和供电情况如何" * 200)[:1990] + "?"


def test_queued_questions_all_get_their_own_answer(api_index_dir: Path, e5: E5Embedder) -> None:
    """With one slot, long and short questions queue behind each other; none is lost or mixed."""
    asked = [LONG_QUESTION, LONG_QUESTION + "!", *QUESTIONS[:4]]
    results: dict[int, httpx.Response] = {}
    with serve(api_settings(api_index_dir, answer_slots=1), e5) as server:

        def ask(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=300) as client:
                results[i] = client.post("/api/ask", json={"question": asked[i]})

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asked))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)

    assert sorted(results) == list(range(len(asked)))
    for i, response in results.items():
        assert response.status_code == 200, response.text[:300]
        assert response.json()["question"] == asked[i].strip()
