"""Core performance: query latency, index build throughput, and a 100k-chunk synthetic corpus.

Usage: python bench/core_bench.py [--chunks 100000] [--rounds 2] [--e5-sample 1000] [--quick]

1. ``Retriever.search`` (what ``retrieve()`` returns the hits of) against the bare
   ``E5Embedder.embed_queries([q])``, interleaved per question over the dev + held-out sets;
   each search uses a fresh Retriever so its query-vector cache never answers (a cache hit is
   timed separately).
2. ``build_index`` on the bundled corpus into a fresh folder against bare ``embed_passages``
   on exactly the texts it embeds, same batch size, interleaved rounds.
3. A synthetic corpus (clauses of the bundled articles recombined into new articles): build
   time, memory and disk per chunk, flat vs HNSW query latency and HNSW recall. Its vectors
   come from a fast hashed n-gram STAND-IN embedder; chunking, sentence table, BM25, FAISS and
   the atomic write are the real ones. The real e5 rate is measured on a sample so the real
   build time can be computed.

Every comparison is measured side by side in one run; results go to bench/results/core.json
and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
from scipy import sparse

import rag.index
import rag.lexical
from rag.chunking import chunk_corpus
from rag.corpus import load_corpus
from rag.embedding import E5Embedder, Embedder
from rag.index import (
    EMBED_BATCH,
    IndexConfig,
    SearchIndex,
    build_index,
    current_path,
    load_index,
    passage_text,
)
from rag.lexical import LexicalIndex
from rag.retrieval import Retriever
from rag.sentences import split_sentences
from rag.settings import BUNDLED_CORPUS
from rag.vectors import VectorIndex

REPO = Path(__file__).resolve().parent.parent
QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl"]
STAND_IN = "bench:hash-ngram-384 (STAND-IN for the embedding step only)"


# --------------------------------------------------------------------------- measuring


def git_state() -> dict[str, Any]:
    """The commit measured, and whether rag/ had uncommitted changes (other work in progress)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "rag_dirty": bool(git("status", "--short", "rag"))}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (OpenMP included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def stats_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": ms(float(np.percentile(samples, 50))),
        "p99_ms": ms(float(np.percentile(samples, 99))),
        "n": len(samples),
    }


def dir_bytes(path: Path) -> dict[str, int]:
    """Bytes per top-level entry of a build directory (folders summed)."""
    sizes: dict[str, int] = {}
    for entry in sorted(path.iterdir()):
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_size for p in files)
    return sizes


class TimedEmbedder:
    """Delegates to an embedder and adds up the time spent in ``embed_passages``."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.seconds = 0.0
        self.texts = 0

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        out = self.inner.embed_passages(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return out


@contextmanager
def build_stages() -> Iterator[dict[str, float]]:
    """Seconds per step of ``build_index``, by wrapping what rag.index calls (no library change).

    Nested entries: "jieba tokenize" is part of "bm25 build"; the embedder's own time is
    reported by TimedEmbedder and is part of "embed_texts".
    """
    seconds: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - started

        return wrapper

    with ExitStack() as stack:
        for owner, attr, name in [
            (rag.index, "load_corpus", "load corpus"),
            (rag.index, "chunk_corpus", "chunking"),
            (rag.index, "sentence_table", "sentence table"),
            (rag.index, "embed_texts", "embed_texts"),
            (rag.index, "_write_jsonl", "write jsonl"),
            (rag.lexical, "tokenize", "jieba tokenize"),
            (VectorIndex, "save", "faiss save"),
            (LexicalIndex, "save", "bm25 save"),
        ]:
            stack.enter_context(patch.object(owner, attr, timed(name, getattr(owner, attr))))
        builders: list[tuple[Any, str]] = [(VectorIndex, "faiss add"), (LexicalIndex, "bm25 build")]
        for cls, name in builders:
            wrapped = staticmethod(timed(name, cls.build))
            stack.enter_context(patch.object(cls, "build", wrapped))
        yield seconds


def timed_build(config: IndexConfig, embedder: Embedder) -> dict[str, Any]:
    """One fresh ``build_index`` with wall/CPU time, step breakdown and embedder time."""
    timed_embedder = TimedEmbedder(embedder)
    with build_stages() as stages:
        cpu, started = cpu_seconds(), time.perf_counter()
        manifest = build_index(config, timed_embedder)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    top = {k: v for k, v in stages.items() if k != "jieba tokenize"}
    steps = {**stages, "embedder (inside embed_texts)": timed_embedder.seconds}
    steps["embed_texts minus embedder (hash, dedupe, sort, copy)"] = (
        stages["embed_texts"] - timed_embedder.seconds
    )
    steps["other (manifest, keys.txt, embeddings.npy, publish)"] = wall - sum(top.values())
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "chunks": manifest.chunk_count,
        "embedded": manifest.embedded,
        "steps": {k: round(v, 3) for k, v in steps.items()},
    }


# --------------------------------------------------------------------------- stand-in embedder


class HashNgramEmbedder:
    """Deterministic, fast stand-in: hashed character 1- and 2-grams, random projection, 384-d.

    Only replaces the embedding step of the synthetic build; it has no semantic quality.
    """

    BUCKETS_LOG2 = 14

    def __init__(self, dim: int = 384, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((1 << self.BUCKETS_LOG2, dim), dtype=np.float32)
        self.dim = dim
        self.id = STAND_IN

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
        codes = codes.astype(np.uint64)
        rows = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
        same = rows[:-1] == rows[1:]  # a bigram never spans two texts
        grams = np.concatenate([codes, ((codes[:-1] << np.uint64(21)) ^ codes[1:])[same]])
        owners = np.concatenate([rows, rows[:-1][same]])
        shift = np.uint64(64 - self.BUCKETS_LOG2)
        buckets = (grams * np.uint64(0x9E3779B97F4A7C15)) >> shift  # Fibonacci hashing
        counts = sparse.csr_matrix(
            (np.ones(len(grams), dtype=np.float32), (owners, buckets.astype(np.int64))),
            shape=(len(texts), self._projection.shape[0]),
        )
        vectors = np.asarray(counts @ self._projection, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


# --------------------------------------------------------------------------- synthetic corpus


def source_clauses(corpus_dir: Path) -> list[str]:
    """Clauses of the body sentences of the bundled articles (cut at full-width commas)."""
    clauses: set[str] = set()
    for doc in load_corpus(corpus_dir).documents:
        for start, end in doc.body:
            for s, e in split_sentences(doc.text, start, end):
                for clause in re.split(r"[，,]", doc.text[s:e].rstrip("。！？；!?;…")):
                    if len(clause.strip()) >= 4:
                        clauses.add(clause.strip())
    return sorted(clauses)


def synthetic_article(number: int, clauses: Sequence[str], seed: int) -> str:
    """A deterministic article of recombined clauses: title, date line, 6-10 paragraphs."""
    rng = random.Random(seed * 1_000_003 + number)
    title = f"{rng.choice(clauses)[:24]}（第{number}篇）"
    date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    paragraphs = []
    for _ in range(rng.randint(6, 10)):
        sentences = [
            "，".join(rng.sample(clauses, rng.randint(1, 3))) + rng.choice("。。。。！？")
            for _ in range(rng.randint(2, 5))
        ]
        paragraphs.append("".join(sentences))
    return "\n\n".join([title, date, *paragraphs]) + "\n"


def write_synthetic_corpus(dest: Path, chunks: int, seed: int = 7) -> dict[str, Any]:
    """Write enough synthetic articles to reach about ``chunks`` chunks (default chunking)."""
    clauses = source_clauses(BUNDLED_CORPUS)

    def write(first: int, count: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(first, first + count):
            text = synthetic_article(n, clauses, seed)
            (folder / f"syn_{n:06d}.txt").write_text(text, encoding="utf-8")

    probe = dest.parent / f"{dest.name}-probe"
    write(0, 50, probe)
    per_article = len(chunk_corpus(load_corpus(probe))) / 50
    shutil.rmtree(probe)
    articles = max(1, math.ceil(chunks / per_article))
    started = time.perf_counter()
    write(0, articles, dest)
    return {
        "articles": articles,
        "source_clauses": len(clauses),
        "write_seconds": round(time.perf_counter() - started, 2),
    }


# --------------------------------------------------------------------------- phases


def read_questions(paths: Sequence[Path]) -> list[str]:
    questions = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return questions


def bench_query(
    e5: E5Embedder, corpus_dir: Path, questions: list[str], rounds: int, work: Path
) -> dict[str, Any]:
    """retrieve() vs bare query embedding, alternating which runs first for each question."""
    build_index(IndexConfig(corpus_dir, work / "query-index"), e5)
    index = load_index(work / "query-index")
    for q in questions[:5]:  # warm-up: jieba, FAISS, the engine
        e5.embed_queries([q])
        uncached_search(index, e5, q)
    bare: list[float] = []
    full: list[float] = []
    parts: dict[str, list[float]] = defaultdict(list)
    load_before = load()
    for r in range(rounds):
        for i, q in enumerate(questions):
            for step in ("embed", "retrieve") if (i + r) % 2 == 0 else ("retrieve", "embed"):
                started = time.perf_counter()
                if step == "embed":
                    e5.embed_queries([q])
                    bare.append(time.perf_counter() - started)
                else:
                    seconds, timings = uncached_search(index, e5, q)
                    full.append(seconds)
                    for key, value in timings.items():
                        parts[key].append(value)
    cached = Retriever(index, e5)
    for q in questions:
        cached.search(q, 5)
    hits = [uncached_search(index, e5, q, cached)[0] for q in questions]
    paired = np.array(full) / np.array(bare)
    retrieve, embed = stats_ms(full), stats_ms(bare)
    return {
        "questions": len(questions),
        "rounds": rounds,
        "retrieve": retrieve,
        "bare_embed": embed,
        "ratio_p50": round(retrieve["p50_ms"] / embed["p50_ms"], 3),
        "ratio_p99": round(retrieve["p99_ms"] / embed["p99_ms"], 3),
        "paired_ratio_median": round(float(np.median(paired)), 3),
        "retrieve_parts_p50_ms": {k: ms(float(np.median(v))) for k, v in parts.items()},
        "non_embed_p50_ms": ms(float(np.median(np.array(parts["retrieve"]) - parts["embed"]))),
        "cached_query_retrieve": stats_ms(hits),
        "load": [load_before, load()],
    }


def build_texts(config: IndexConfig) -> list[str]:
    """Exactly the distinct texts ``build_index`` embeds for ``config``, in corpus order."""
    corpus = load_corpus(config.corpus_dir)
    chunks = chunk_corpus(corpus, config.chunk_chars, config.chunk_overlap)
    # Chunk passages only: sentences are embedded when questions need them.
    return list(dict.fromkeys(passage_text(c) for c in chunks))


def quick_corpus(dest: Path, chars: int = 1500) -> Path:
    """The first ~``chars`` characters (whole lines) of the first bundled article."""
    first = sorted(BUNDLED_CORPUS.iterdir())[0]
    text = first.read_text(encoding="utf-8")
    dest.mkdir(parents=True)
    (dest / first.name).write_text(text[: text.rfind("\n", 0, chars) + 1], encoding="utf-8")
    return dest


def embed_in_batches(embedder: Embedder, texts: Sequence[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), EMBED_BATCH):
        embedder.embed_passages(texts[i : i + EMBED_BATCH])
    return time.perf_counter() - started


def bench_build(e5: E5Embedder, corpus_dir: Path, rounds: int, work: Path) -> dict[str, Any]:
    """build_index into fresh folders vs bare embed_passages, alternating which goes first."""
    texts = build_texts(IndexConfig(corpus_dir, work))
    builds: list[dict[str, Any]] = []
    bare: list[float] = []
    bare_cpu: list[float] = []
    load_before = load()
    for r in range(rounds):
        for arm in ("build", "bare") if r % 2 == 0 else ("bare", "build"):
            if arm == "build":
                builds.append(timed_build(IndexConfig(corpus_dir, work / f"build-{r}"), e5))
            else:
                cpu = cpu_seconds()
                bare.append(embed_in_batches(e5, texts))
                bare_cpu.append(cpu_seconds() - cpu)
    assert all(b["embedded"] == len(texts) for b in builds), "build embedded other texts"
    build_s = float(np.median([b["seconds"] for b in builds]))
    bare_s = float(np.median(bare))
    steps = {
        k: round(float(np.median([b["steps"][k] for b in builds])), 3) for k in builds[0]["steps"]
    }
    return {
        "texts": len(texts),
        "chunks": builds[0]["chunks"],
        "batch": EMBED_BATCH,
        "rounds": rounds,
        "build_seconds": [round(b["seconds"], 3) for b in builds],
        "build_cpu_seconds": [round(b["cpu_seconds"], 3) for b in builds],
        "bare_seconds": [round(s, 3) for s in bare],
        "bare_cpu_seconds": [round(s, 3) for s in bare_cpu],
        "build_texts_per_s": round(len(texts) / build_s, 2),
        "bare_texts_per_s": round(len(texts) / bare_s, 2),
        "ratio": round(bare_s / build_s, 3),
        "cpu_ratio": round(
            float(np.median(bare_cpu)) / float(np.median([b["cpu_seconds"] for b in builds])), 3
        ),
        "build_steps_median_s": steps,
        "load": [load_before, load()],
    }


def _measure_load(index_dir: str) -> dict[str, float]:
    """Run in a fresh process: RSS added by load_index, and how long loading takes."""
    gc.collect()
    before, started = rss_bytes(), time.perf_counter()
    index = load_index(Path(index_dir))
    seconds = time.perf_counter() - started
    gc.collect()
    return {"rss_growth": rss_bytes() - before, "seconds": seconds, "chunks": len(index.chunks)}


def uncached_search(
    index: SearchIndex, embedder: Embedder, query: str, retriever: Retriever | None = None
) -> tuple[float, dict[str, float]]:
    """Seconds and stage timings of one ``search(query, 5)``.

    A fresh Retriever by default, so its query-vector cache cannot answer; pass one to time
    whatever its cache holds.
    """
    retriever = retriever or Retriever(index, embedder)
    started = time.perf_counter()
    timings = retriever.search(query, 5).timings
    return time.perf_counter() - started, timings


def query_latency(
    indexes: dict[str, SearchIndex], embedder: Embedder, questions: list[str], rounds: int
) -> dict[str, Any]:
    """Interleaved uncached retrieve timings per index: totals and the per-stage p50."""
    totals: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    names = list(indexes)
    for r in range(rounds):
        for i, q in enumerate(questions):
            for name in names if (i + r) % 2 == 0 else names[::-1]:
                seconds, timings = uncached_search(indexes[name], embedder, q)
                totals[name].append(seconds)
                for key, value in timings.items():
                    parts[name][key].append(value)
    return {
        name: {
            **stats_ms(totals[name]),
            "parts_p50_ms": {k: ms(float(np.median(v))) for k, v in parts[name].items()},
        }
        for name in names
    }


def recall_at(k: int, exact: VectorIndex, approximate: VectorIndex, queries: np.ndarray) -> float:
    """Share of the exact top-``k`` rows that the approximate index also returns in its top-k."""
    _, truth = exact.search(queries, k)
    _, found = approximate.search(queries, k)
    hits = [len(set(t) & set(f)) / len(t) for t, f in zip(truth, found, strict=True)]
    return round(float(np.mean(hits)), 4)


def bench_scale(
    e5: E5Embedder,
    chunks: int,
    questions: list[str],
    rounds: int,
    e5_sample: int,
    work: Path,
    full_flat_build: bool,
) -> dict[str, Any]:
    """The synthetic corpus: build, memory, disk, flat vs HNSW latency and recall, e5 rate."""
    corpus_dir = work / "synthetic"
    corpus_info = write_synthetic_corpus(corpus_dir, chunks)
    stand_in = HashNgramEmbedder()
    load_before = load()

    gc.collect()
    reset_peak_rss()
    rss_before = rss_bytes()
    build = timed_build(IndexConfig(corpus_dir, work / "index-hnsw", ann="hnsw"), stand_in)
    build_peak = peak_rss_bytes() - rss_before
    n = build["chunks"]
    disk = dir_bytes(current_path(work / "index-hnsw").resolve())

    hnsw_index = load_index(work / "index-hnsw")
    chunk_vectors = np.load(hnsw_index.path / "embeddings.npy", mmap_mode="r")[:n]
    started = time.perf_counter()
    flat_vectors = VectorIndex.build(np.array(chunk_vectors), "flat")
    flat_add = time.perf_counter() - started
    flat_build = None
    if full_flat_build:
        flat_build = timed_build(IndexConfig(corpus_dir, work / "index-flat", ann="flat"), stand_in)
        flat_index = load_index(work / "index-flat")
    else:  # the same build with its vector index swapped for exact search
        flat_index = replace(hnsw_index, vectors=flat_vectors)
    flat_vectors.save(work / "flat.faiss")
    flat_disk = (work / "flat.faiss").stat().st_size

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        loaded = pool.apply(_measure_load, (str(work / "index-hnsw"),))

    indexes = {"flat": flat_index, "hnsw": hnsw_index}
    for q in questions[:5]:
        for index in indexes.values():
            uncached_search(index, stand_in, q)
    latency = query_latency(indexes, stand_in, questions, rounds)

    clauses = source_clauses(BUNDLED_CORPUS)
    rng = random.Random(11)
    probe_queries = questions + [
        "，".join(rng.sample(clauses, 2)) for _ in range(500 - len(questions))
    ]
    probe_vectors = stand_in.embed_queries(probe_queries)
    recall = {k: recall_at(k, flat_vectors, hnsw_index.vectors, probe_vectors) for k in (10, 50)}

    texts = build_texts(IndexConfig(corpus_dir, work))
    sample = random.Random(5).sample(texts, min(e5_sample, len(texts)))
    cpu = cpu_seconds()
    e5_seconds = embed_in_batches(e5, sample)
    e5_cpu = cpu_seconds() - cpu
    stand_in_seconds = embed_in_batches(stand_in, sample)
    e5_rate = len(sample) / e5_seconds
    non_embed = build["seconds"] - build["steps"]["embedder (inside embed_texts)"]
    projected = non_embed + build["embedded"] / e5_rate
    # If the e5 batches had every core to themselves: CPU seconds per text / cores.
    projected_idle = non_embed + build["embedded"] * e5_cpu / len(sample) / (os.cpu_count() or 1)
    return {
        "corpus": {**corpus_info, "chunks": n, "texts_embedded": build["embedded"]},
        "embedder": STAND_IN,
        "build": build,
        "build_seconds_per_1k_chunks": round(build["seconds"] / n * 1000, 3),
        "build_without_embedding_per_1k_chunks": round(non_embed / n * 1000, 3),
        "flat_faiss_add_seconds": round(flat_add, 3),
        "full_flat_build": flat_build,
        "e5_sample": {
            "texts": len(sample),
            "mean_chars": round(float(np.mean([len(t) for t in sample])), 1),
            "e5_seconds": round(e5_seconds, 2),
            "e5_texts_per_s": round(e5_rate, 2),
            "e5_cpu_ms_per_text": round(e5_cpu / len(sample) * 1000, 1),
            "stand_in_texts_per_s": round(len(sample) / stand_in_seconds, 1),
        },
        "projected_e5_build_seconds": round(projected, 1),
        "projected_e5_build_seconds_per_1k_chunks": round(projected / n * 1000, 2),
        "projected_e5_build_seconds_all_cores_free": round(projected_idle, 1),
        "memory": {
            "build_peak_rss_growth_bytes_per_chunk": round(build_peak / n),
            "loaded_index_rss_bytes_per_chunk": round(loaded["rss_growth"] / n),
            "load_index_seconds": round(loaded["seconds"], 2),
            "disk_bytes_per_chunk": round(sum(disk.values()) / n),
            "disk_bytes": disk,
            "flat_faiss_file_bytes": flat_disk,
        },
        "query": latency,
        "recall_hnsw_vs_flat": {f"at_{k}": v for k, v in recall.items()},
        "recall_queries": len(probe_queries),
        "load": [load_before, load()],
    }


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    """The headline figures as a Markdown table."""
    q, b = results["query"], results["build"]
    query_ok = "met" if q["ratio_p50"] <= 1.3 else "MISSED"
    build_ok = "met" if b["ratio"] >= 0.9 else "MISSED"
    rows = [
        ("retrieve() p50 / p99", f"{q['retrieve']['p50_ms']} / {q['retrieve']['p99_ms']} ms", ""),
        (
            "bare embed_queries([q]) p50 / p99",
            f"{q['bare_embed']['p50_ms']} / {q['bare_embed']['p99_ms']} ms",
            f"{q['questions']} questions x {q['rounds']} rounds, interleaved",
        ),
        (
            "retrieve / embed, p50",
            f"{q['ratio_p50']}x",
            f"aim <= 1.3x: {query_ok}; paired median {q['paired_ratio_median']}x, "
            f"non-embedding part p50 {q['non_embed_p50_ms']} ms",
        ),
        (
            "retrieve() p50, repeated question",
            f"{q['cached_query_retrieve']['p50_ms']} ms",
            "query vector from the Retriever's LRU cache; all other rows are uncached",
        ),
        (
            "build_index throughput",
            f"{b['build_texts_per_s']} texts/s",
            f"{b['texts']} texts ({b['chunks']} chunk passages), fresh dir",
        ),
        (
            "bare embed_passages throughput",
            f"{b['bare_texts_per_s']} texts/s",
            f"same texts, batch {b['batch']}, {b['rounds']} interleaved rounds",
        ),
        (
            "build / bare throughput",
            f"{b['ratio'] * 100:.1f}%",
            f"aim >= 90%: {build_ok}; by CPU time {b['cpu_ratio'] * 100:.1f}%",
        ),
    ]
    if "scale" in results:
        rows += _scale_rows(results["scale"])
    lines = ["| measure | value | note |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {note} |" for name, value, note in rows]
    return "\n".join(lines)


def _scale_rows(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    m, e5, corpus = s["memory"], s["e5_sample"], s["corpus"]
    flat, hnsw = s["query"]["flat"], s["query"]["hnsw"]
    return [
        (
            "synthetic corpus",
            f"{corpus['chunks']} chunks",
            f"{corpus['articles']} articles, {corpus['texts_embedded']} texts embedded",
        ),
        (
            "build per 1k chunks, STAND-IN embedder",
            f"{s['build_seconds_per_1k_chunks']} s",
            f"HNSW; everything but embedding {s['build_without_embedding_per_1k_chunks']} s",
        ),
        (
            "e5 embedding rate (sample)",
            f"{e5['e5_texts_per_s']} texts/s",
            f"{e5['texts']} synthetic texts, mean {e5['mean_chars']} chars",
        ),
        (
            "projected build per 1k chunks with e5",
            f"{s['projected_e5_build_seconds_per_1k_chunks']} s",
            f"whole corpus {s['projected_e5_build_seconds'] / 3600:.1f} h at this rate; "
            f"{s['projected_e5_build_seconds_all_cores_free'] / 3600:.1f} h from e5 CPU time "
            f"({e5['e5_cpu_ms_per_text']} ms/text) if all cores were free",
        ),
        ("build peak RSS growth per chunk", f"{m['build_peak_rss_growth_bytes_per_chunk']} B", ""),
        (
            "loaded index RSS per chunk",
            f"{m['loaded_index_rss_bytes_per_chunk']} B",
            f"load_index {m['load_index_seconds']} s",
        ),
        ("on-disk bytes per chunk", f"{m['disk_bytes_per_chunk']} B", "HNSW build"),
        (
            "retrieve() p50 flat / HNSW",
            f"{flat['p50_ms']} / {hnsw['p50_ms']} ms",
            "stand-in query embedding",
        ),
        (
            "dense search p50 flat / HNSW",
            f"{flat['parts_p50_ms']['dense']} / {hnsw['parts_p50_ms']['dense']} ms",
            f"BM25 + sentence scores p50 {hnsw['parts_p50_ms']['lexical']} ms",
        ),
        (
            "recall@10 / @50 HNSW vs flat",
            f"{s['recall_hnsw_vs_flat']['at_10']} / {s['recall_hnsw_vs_flat']['at_50']}",
            f"{s['recall_queries']} queries, stand-in vectors",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000, help="synthetic corpus size")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per comparison")
    parser.add_argument(
        "--e5-sample",
        type=int,
        default=1000,
        help="synthetic texts embedded with e5 to measure its real rate",
    )
    parser.add_argument(
        "--full-flat-build",
        action="store_true",
        help="also run build_index(ann='flat') on the synthetic corpus "
        "(default: swap a flat FAISS index into the HNSW build)",
    )
    parser.add_argument("--quick", action="store_true", help="~1-minute smoke run")
    parser.add_argument("--out", type=Path, help="default bench/results/core.json (core-quick)")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.rounds, args.e5_sample = min(args.chunks, 2000), 1, 32
    name = "core-quick.json" if args.quick else "core.json"
    args.out = args.out or REPO / "bench" / "results" / name
    started = time.perf_counter()
    e5 = E5Embedder()
    questions = read_questions(QUESTION_FILES)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "git": git_state(),
            "load_at_start": load(),
        },
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="core-bench-") as scratch:
        work = Path(scratch)
        corpus_dir = quick_corpus(work / "quick-corpus") if args.quick else BUNDLED_CORPUS
        asked = questions[:10] if args.quick else questions
        results["query"] = bench_query(e5, corpus_dir, asked, args.rounds, work)
        print(json.dumps({"query": results["query"]}, ensure_ascii=False), flush=True)
        results["build"] = bench_build(e5, corpus_dir, args.rounds, work)
        print(json.dumps({"build": results["build"]}, ensure_ascii=False), flush=True)
        if args.chunks > 0:
            results["scale"] = bench_scale(
                e5, args.chunks, questions, args.rounds, args.e5_sample, work, args.full_flat_build
            )
    results["machine"]["load_at_end"] = load()
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(markdown(results))
    print(
        f"\n{results['seconds']} s; load average start {results['machine']['load_at_start']}, "
        f"end {results['machine']['load_at_end']}; full results in {args.out}"
    )


if __name__ == "__main__":
    main()
