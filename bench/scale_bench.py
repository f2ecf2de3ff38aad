"""Scale: memory, load time, retrieve() latency and ANN recall from 100k to 1M chunks.

Usage:
    python bench/scale_bench.py                           # build part at 100k, parts at 1M
    python bench/scale_bench.py --chunks 200000 --components 1000000
    python bench/scale_bench.py --chunks 20000 --components 100000 --out /tmp/s.json  # smoke

Two parts, both on synthetic corpora of recombined clauses of the bundled articles
(bench/core_bench.py's generator):

1. **Whole index** (``--chunks``): ``build_index(..., ann="hnsw")`` with every step real except
   the embedder, a STAND-IN (hashed character n-grams, bench/core_bench.py) that costs
   microseconds. A fresh process loads it and answers questions: load seconds, RSS added by
   the load and after the questions (anonymous memory and file pages of memory-mapped files
   apart), and ``retrieve()`` timings without any embedding (the query embedding is excluded by
   its timing; sentence vectors come from a warm cache, their e5 cost is measured in
   bench/embed_less.py).
2. **Parts at 1M** (``--components``): what a 1M-chunk index holds, built directly:
   - vectors (``--ann-vectors``, 300k by default: a 1M graph takes ~30 minutes to build on
     two shared cores): **e5-derived** vectors (real multilingual-e5-small passage vectors of the
     SQuAD-layout corpora, recombined with noise: e5's anisotropy, not its semantics) in the
     HNSW-SQ8 index; recall@10 against exact float32 search for real e5 query vectors of SQuAD
     questions, per efSearch; the same on the real vectors alone (~10k);
   - BM25: 1M synthetic chunks of pre-tokenised clauses, saved and memory-mapped; top-50
     with ``LexicalIndex.search`` against full scoring (bm25s ``get_scores`` + partition);
   - offset tables for 1M chunks (rag/chunk_store.py).

Results: bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_bench import (
    HashNgramEmbedder,
    git_state,
    load,
    read_questions,
    source_clauses,
    write_synthetic_corpus,
)

from rag.chunk_store import Sentence, write_tables
from rag.chunking import Chunk
from rag.embedding import E5Embedder
from rag.index import IndexConfig, SearchIndex, build_index, current_path, load_index
from rag.lexical import LexicalIndex
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS
from rag.tokens import tokenize
from rag.vectors import VectorIndex

REPO = Path(__file__).resolve().parent.parent
QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl"]
REAL_VECTORS = [
    Path("/work/cache/qa/train/index/current/embeddings.npy"),
    Path("/work/cache/qa/validation/index/current/embeddings.npy"),
]


def memory() -> dict[str, int]:
    """Resident bytes of this process: anonymous (heap) and file-backed (mapped files)."""
    status = Path("/proc/self/status").read_text()

    def field(name: str) -> int:
        match = re.search(rf"^{name}:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) * 1024 if match else 0

    return {"anon": field("RssAnon"), "file": field("RssFile"), "total": field("VmRSS")}


def p50_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 3)


def p99_ms(samples: list[float]) -> float:
    return round(1000 * float(np.percentile(samples, 99)), 3)


# --------------------------------------------------------------------------- part 1


def time_searches(
    retriever: Retriever, questions: list[str]
) -> tuple[list[float], dict[str, list[float]]]:
    """Ask every question twice and time the second pass (the first warms the hits' sentence
    vectors and the mapped files' pages): ``retrieve()`` without the query embedding, and
    each of its parts, per question. The query-vector cache is cleared before each search."""
    for q in questions:
        retriever.search(q, 8)
    totals: list[float] = []
    parts: dict[str, list[float]] = {"dense": [], "lexical": [], "sentences": [], "fuse": []}
    for q in questions:
        retriever._cache.clear()
        timings = retriever.search(q, 8).timings
        totals.append(timings["retrieve"] - timings["embed"])
        for key in parts:
            parts[key].append(timings[key])
    return totals, parts


@dataclass
class Served:
    """An index loaded in this process and every question asked twice: memory (``memory()``
    before loading, after it, after the questions) and the second pass's timings."""

    index: SearchIndex
    retriever: Retriever
    stand_in: HashNgramEmbedder
    load_seconds: float
    before: dict[str, float]
    loaded: dict[str, float]
    after: dict[str, float]
    totals: list[float]
    parts: dict[str, list[float]]


def serve(index_dir: Path, questions: list[str], graph: Path | None = None) -> Served:
    """Load the index and time ``questions`` (``time_searches``); ``graph``: search with this
    vector index instead of the build's (same stored vectors)."""
    gc.collect()
    stand_in = HashNgramEmbedder()  # fixed costs before the first measurement: the stand-in's
    tokenize("预热 jieba")  # projection matrix (25 MB) and jieba's dictionary (~50 MB)
    before = memory()
    started = time.perf_counter()
    index = load_index(index_dir)
    load_seconds = time.perf_counter() - started
    if graph is not None:
        exact_rows = np.load(index.path / "embeddings.npy", mmap_mode="r")
        index.vectors = VectorIndex.load(graph, exact_rows)
    gc.collect()
    loaded = memory()
    retriever = Retriever(index, stand_in)
    totals, parts = time_searches(retriever, questions)
    gc.collect()
    after = memory()
    return Served(index, retriever, stand_in, load_seconds, before, loaded, after, totals, parts)


def _serve_questions(index_dir: str, questions: list[str]) -> dict[str, Any]:
    """In a fresh process: load, answer ``questions`` twice, report memory and timings."""
    served = serve(Path(index_dir), questions)
    index, before, loaded, after = served.index, served.before, served.loaded, served.after
    totals, parts, load_seconds = served.totals, served.parts, served.load_seconds
    n = len(index.chunks)
    return {
        "chunks": n,
        "load_seconds": round(load_seconds, 2),
        "rss_after_load_per_chunk": {k: round((loaded[k] - before[k]) / n) for k in before},
        "rss_after_questions_per_chunk": {k: round((after[k] - before[k]) / n) for k in before},
        "sentence_vectors_cached": len(index.sentence_vectors),
        "retrieve_without_embedding_p50_ms": p50_ms(totals),
        "retrieve_without_embedding_p99_ms": p99_ms(totals),
        "parts_p50_ms": {k: p50_ms(v) for k, v in parts.items()},
        "questions": len(questions),
    }


def whole_index(chunks: int, questions: list[str], work: Path) -> dict[str, Any]:
    corpus_dir = work / "synthetic"
    info = write_synthetic_corpus(corpus_dir, chunks)
    started = time.perf_counter()
    manifest = build_index(IndexConfig(corpus_dir, work / "index", ann="hnsw"), HashNgramEmbedder())
    build_seconds = time.perf_counter() - started
    build = current_path(work / "index").resolve()
    disk = sum(p.stat().st_size for p in build.rglob("*") if p.is_file())
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        served = pool.apply(_serve_questions, (str(work / "index"), questions))
    return {
        **info,
        "build_seconds_stand_in": round(build_seconds, 1),
        "embedded_texts_per_chunk": round(manifest.embedded / manifest.chunk_count, 3),
        "disk_bytes_per_chunk": round(disk / manifest.chunk_count),
        **served,
    }


def _load_once(index_dir: str, verify: bool) -> None:
    """In a fresh process (whichever tree is on PYTHONPATH): one load_index, as JSON."""
    gc.collect()
    tokenize("预热 jieba")
    before = memory()
    started = time.perf_counter()
    kwargs = {"verify": True} if verify else {}
    index = load_index(Path(index_dir), **kwargs)
    seconds = time.perf_counter() - started
    gc.collect()
    loaded = memory()
    n = len(index.chunks)
    per_chunk = {k: round((loaded[k] - before[k]) / n) for k in before}
    print(json.dumps({"chunks": n, "load_seconds": round(seconds, 3), "rss_per_chunk": per_chunk}))


def evict(build: Path) -> None:
    """Drop the build's files from the page cache (theirs only), as after a reboot."""
    for path in build.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def load_part(index_dir: Path, before_tree: Path | None, rounds: int, cold: bool) -> dict[str, Any]:
    """Load times and RAM side by side, each load in a fresh process, the variants alternated:
    ``before`` (another checkout, e.g. main), every file hashed (``verify=True``, as on the
    first load of a copied index), and the stat-checked load that follows a verified one.
    ``cold``: the build's files are evicted from the page cache before each load."""
    variants = {"hash_all": (REPO, True), "stat_checked": (REPO, False)}
    if before_tree is not None:
        variants = {"before": (before_tree, False), **variants}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (tree, verify) in variants.items():
            command = [sys.executable, __file__, "--load-once", str(index_dir)]
            if cold:
                evict(current_path(index_dir).resolve())
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(
                command + (["--verify"] if verify else []),
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        name: {
            "load_seconds_median": statistics.median(s["load_seconds"] for s in runs),
            "load_seconds": [s["load_seconds"] for s in runs],
            "anon_bytes_per_chunk_median": statistics.median(
                s["rss_per_chunk"]["anon"] for s in runs
            ),
            "chunks": runs[0]["chunks"],
        }
        for name, runs in samples.items()
    }


# --------------------------------------------------------------------------- part 2


def real_vectors() -> np.ndarray:
    parts = [np.load(p) for p in REAL_VECTORS if p.exists()]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def e5_derived(real: np.ndarray, n: int, seed: int = 3) -> np.ndarray:
    """``n`` unit vectors shaped like e5's: a real vector plus half the difference of two
    others plus a little per-dimension noise, normalised."""
    rng = np.random.default_rng(seed)
    spread = real.std(axis=0)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        i, j, k = (rng.integers(0, len(real), m) for _ in range(3))
        v = (
            real[i]
            + 0.5 * (real[j] - real[k])
            + 0.3 * spread * rng.standard_normal((m, real.shape[1]), dtype=np.float32)
        )
        out[lo : lo + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def timed_top10(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    queries: Iterable[np.ndarray],
) -> tuple[list[float], np.ndarray]:
    """Search one query at a time, as the service does: seconds per query and the top-10 ids."""
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = search(q, 10)
        times.append(time.perf_counter() - t0)
        found.append(ids[0])
    return times, np.array(found)


def recall(exact_ids: np.ndarray, found: np.ndarray) -> float:
    return round(
        float(
            np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(exact_ids, found, strict=True)])
        ),
        4,
    )


def ann_part(base: np.ndarray, queries: np.ndarray, label: str) -> dict[str, Any]:
    """HNSW-SQ8 against exact float32 search on ``base``: build, bytes, latency, recall."""
    exact = VectorIndex.build(base, "flat")
    _, truth = exact.search(queries, 10)
    del exact
    gc.collect()
    started = time.perf_counter()
    hnsw = VectorIndex.build(base, "hnsw")
    build_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        hnsw.save(Path(tmp) / "v.faiss")
        size = (Path(tmp) / "v.faiss").stat().st_size
    sweep = {}
    for ef in (64, 128, 256):
        hnsw._index.hnsw.efSearch = ef
        times = []
        found = []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = hnsw.search(q, 10)
            times.append(time.perf_counter() - t0)
            found.append(ids[0])
        sweep[ef] = {"recall@10": recall(truth, np.array(found)), "p50_ms": p50_ms(times)}
    return {
        "label": label,
        "vectors": len(base),
        "build_seconds": round(build_seconds, 1),
        "bytes_per_vector": round(size / len(base)),
        "by_ef_search": sweep,
    }


def synthetic_tokens(n: int, seed: int = 9) -> list[list[str]]:
    """Token lists of ``n`` synthetic ~200-character chunks: 3-8 recombined clauses each,
    every clause tokenised once (jieba at 1M chunks would take ~8 minutes)."""
    clauses = [tokenize(c) for c in source_clauses(BUNDLED_CORPUS)]
    rng = random.Random(seed)
    return [
        [t for c in rng.sample(clauses, rng.randint(3, 8)) for t in c] or [""] for _ in range(n)
    ]


def bm25_part(n: int, questions: list[str], work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    model = bm25s.BM25()
    model.index(synthetic_tokens(n), show_progress=False)
    LexicalIndex(model, n).save(work / "bm25")
    build_seconds = time.perf_counter() - started
    del model
    gc.collect()
    before = memory()
    t0 = time.perf_counter()
    lexical = LexicalIndex.load(work / "bm25", n)
    load_seconds = time.perf_counter() - t0
    loaded = memory()
    rng = np.random.default_rng(1)
    extra = [list(rng.integers(0, n, 50)) for _ in questions]
    full, pruned, agree, exact_scores = [], [], [], []
    for q, rows in zip(questions, extra, strict=True):
        t0 = time.perf_counter()
        scores = lexical.scores(q)
        positive = np.flatnonzero(scores > 0)
        if len(positive) > 50:
            kth = np.partition(scores[positive], len(positive) - 50)[len(positive) - 50]
            positive = positive[scores[positive] >= kth]
        truth = sorted(positive.tolist(), key=lambda r: (-scores[r], r))[:50]
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ranked, score = lexical.search(q, 50, rows)
        pruned.append(time.perf_counter() - t0)
        agree.append(len(set(ranked) & set(truth)) / len(truth) if truth else float(not ranked))
        exact_scores.append(all(abs(score[r] - scores[r]) < 1e-3 for r in score))
    after = memory()
    disk = sum(p.stat().st_size for p in (work / "bm25").iterdir())
    return {
        "chunks": n,
        "build_seconds": round(build_seconds, 1),
        "disk_bytes_per_chunk": round(disk / n),
        "load_seconds": round(load_seconds, 2),
        "rss_after_load_per_chunk": {k: round((loaded[k] - before[k]) / n) for k in before},
        "rss_after_queries_per_chunk": {k: round((after[k] - before[k]) / n) for k in before},
        "full_scores_top50_p50_ms": p50_ms(full),
        "search_top50_p50_ms": p50_ms(pruned),
        "search_top50_p99_ms": p99_ms(pruned),
        "top50_agreement_mean": round(float(np.mean(agree)), 4),
        "top50_agreement_min": round(float(np.min(agree)), 4),
        "scores_exact_share": round(float(np.mean(exact_scores)), 4),
    }


def tables_part(n: int, work: Path) -> dict[str, Any]:
    """Offset tables of ``n`` chunks with 3.4 sentences each (as the synthetic corpus has)."""
    chunks = [Chunk("d", i, 0, 1, "", "") for i in range(n)]
    sentences = [Sentence("d", i, i + 1) for i in range(int(n * 2.6))]
    members = [[int(i * 2.6) + j for j in range(4)] for i in range(n)]
    folder = work / "tables"
    folder.mkdir()
    write_tables(folder, ["d"], chunks, sentences, members)
    disk = sum(p.stat().st_size for p in folder.iterdir())
    return {"chunks": n, "disk_bytes_per_chunk": round(disk / n, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000, help="whole-index part (0: skip)")
    parser.add_argument("--components", type=int, default=1_000_000, help="parts (0: skip)")
    parser.add_argument(
        "--ann-vectors", type=int, default=300_000, help="HNSW part (1M takes ~30 min to build)"
    )
    parser.add_argument("--queries", type=int, default=200, help="e5 query vectors for recall")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    parser.add_argument("--load-index", type=Path, help="only time loading this index folder")
    parser.add_argument("--before-tree", type=Path, help="with --load-index: also this checkout")
    parser.add_argument("--rounds", type=int, default=3, help="with --load-index")
    parser.add_argument("--cold", action="store_true", help="with --load-index: evict first")
    parser.add_argument("--load-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_once:
        _load_once(str(args.load_once), args.verify)
        return
    if args.load_index:
        report = {"git": git_state(), "cpus": os.cpu_count(), "load": [load()]}
        report["cold_page_cache"] = args.cold
        report["load_index"] = load_part(args.load_index, args.before_tree, args.rounds, args.cold)
        report["load"].append(load())
        print(json.dumps(report["load_index"], indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        return
    started = time.perf_counter()
    questions = read_questions(QUESTION_FILES)
    report: dict[str, Any] = {"git": git_state(), "cpus": os.cpu_count(), "load": [load()]}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        if args.components:
            e5 = E5Embedder()
            from rag.answering.qa_sets import DEFAULT_DATA_DIR, load_sets, split

            _, validation = split(load_sets(DEFAULT_DATA_DIR))
            asked = [item.question for item in validation.items[::7]][: args.queries]
            queries = e5.embed_queries(asked)
            real = real_vectors()
            report["ann_real"] = ann_part(real, queries, "real e5 passage vectors")
            print(json.dumps(report["ann_real"]), flush=True)
            base = e5_derived(real, args.ann_vectors)
            report["ann_large"] = ann_part(base, queries, "e5-derived vectors")
            print(json.dumps(report["ann_large"]), flush=True)
            del base
            gc.collect()
            report["bm25"] = bm25_part(args.components, questions, work)
            print(json.dumps(report["bm25"]), flush=True)
            report["tables"] = tables_part(args.components, work)
            report["load"].append(load())
        if args.chunks:
            report["whole_index"] = whole_index(args.chunks, questions, work)
            print(json.dumps(report["whole_index"]), flush=True)
            report["load"].append(load())
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
