"""Scale, whole index at a million chunks: load time, RAM per chunk, retrieve() latency.

Usage:
    python bench/scale_1m.py                       # build once into /work/cache/scale1m, measure
    python bench/scale_1m.py --chunks 20000 --dir /tmp/s20k --out /tmp/s.json   # smoke
    python bench/scale_1m.py --e5-recall           # also IVF recall on 1M e5-derived vectors

The corpus is synthetic (clauses of the bundled articles recombined into articles,
bench/core_bench.py's generator) and the build is ``build_index`` with every step real except
the embedder: the hashed n-gram STAND-IN of bench/core_bench.py, so the dense figures measure
the index machinery, not e5's quality (``--e5-recall`` measures the vector index on vectors
derived from real e5 ones, as bench/scale_bench.py does). The build is reused when present.

Then, each in a fresh process: ``load_index`` three times (median; RAM added per chunk,
anonymous and file-backed apart), and one serving process that loads, asks ``--questions``
questions twice (a warm pass, then a timed one with the query-vector cache cleared) and reports
``retrieve()`` without the query embedding (p50/p99, and per stage), RAM after the questions,
and BM25 top-50 against exact full scoring. Results: bench/results/scale-1m.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_bench import HashNgramEmbedder, git_state, load, read_questions, write_synthetic_corpus
from scale_bench import (
    QUESTION_FILES,
    memory,
    p50_ms,
    p99_ms,
    recall,
    serve,
    timed_top10,
)

import rag.index
from rag.index import IndexConfig, build_index, current_path, load_index
from rag.lexical import LexicalIndex
from rag.manifest import Manifest
from rag.tokens import tokenize
from rag.vectors import VectorIndex

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path("/work/cache/scale1m")


# --------------------------------------------------------------------------- build


@contextlib.contextmanager
def announced_stages(started: float) -> Iterator[None]:
    """Print when each step of ``build_index`` starts and ends (the embedding has its bar)."""

    def announced(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            print(f"[{t0 - started:7.0f}s] {name} ...", flush=True)
            try:
                return fn(*args, **kwargs)
            finally:
                print(f"[{time.perf_counter() - started:7.0f}s] {name} done", flush=True)

        return wrapper

    steps = [
        (rag.index, "chunk_corpus", "chunking"),
        (rag.index, "sentence_table", "sentence table"),
        (rag.index, "embed_texts", "embedding (stand-in)"),
        (rag.index, "_save_vectors", "vector index build+save"),
        (rag.index, "write_tables", "offset tables"),
        (rag.index, "write_documents", "documents"),
        (rag.index, "build_checksums", "checksums"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, attr, name in steps:
            stack.enter_context(patch.object(owner, attr, announced(name, getattr(owner, attr))))
        build = staticmethod(announced("BM25 (jieba + bm25s + impact order)", LexicalIndex.build))
        stack.enter_context(patch.object(LexicalIndex, "build", build))
        vectors = staticmethod(announced("vector index (FAISS)", VectorIndex.build))
        stack.enter_context(patch.object(VectorIndex, "build", vectors))
        yield


def ensure_build(work: Path, chunks: int, ann: str) -> dict[str, Any]:
    """The corpus and the index under ``work``, written only where missing."""
    corpus, index = work / "corpus", work / "index"
    info_file = work / "corpus.json"
    if not info_file.exists():
        print(f"writing a synthetic corpus of ~{chunks} chunks into {corpus}", flush=True)
        info = write_synthetic_corpus(corpus, chunks)
        info_file.write_text(json.dumps(info), encoding="utf-8")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    build_file = work / "build.json"
    if (current_path(index) / "manifest.json").is_file() and build_file.exists():
        return {**info, **json.loads(build_file.read_text(encoding="utf-8")), "reused": True}
    started = time.perf_counter()
    load_before = load()
    with announced_stages(started):
        manifest = build_index(
            IndexConfig(corpus, index, ann="auto"),
            HashNgramEmbedder(),
            progress=True,
            embed_batch=1024,
        )
    build = current_path(index).resolve()
    disk = {p.name: p.stat().st_size for p in build.iterdir() if p.is_file()}
    disk["bm25/"] = sum(p.stat().st_size for p in (build / "bm25").iterdir())
    report = {
        "chunks": manifest.chunk_count,
        "documents": manifest.document_count,
        "vector_index": manifest.vector_index,
        "embedder": manifest.embedder,
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_load_average": [load_before, load()],
        "disk_bytes_per_chunk": {k: round(v / manifest.chunk_count, 1) for k, v in disk.items()},
    }
    build_file.write_text(json.dumps(report), encoding="utf-8")
    return {**info, **report, "reused": False}


# --------------------------------------------------------------------------- fresh processes


def load_once(index_dir: Path) -> dict[str, Any]:
    gc.collect()
    tokenize("预热 jieba")  # jieba's dictionary is not the index's
    before = memory()
    started = time.perf_counter()
    index = load_index(index_dir)
    seconds = time.perf_counter() - started
    gc.collect()
    loaded = memory()
    n = len(index.chunks)
    return {
        "chunks": n,
        "load_seconds": round(seconds, 3),
        "rss_per_chunk": {k: round((loaded[k] - before[k]) / n, 1) for k in before},
    }


def exact_top(lexical: LexicalIndex, query: str, pool: int) -> list[int]:
    """The exact BM25 top ``pool`` rows (every chunk scored), ties by row."""
    scores = lexical.scores(query)
    positive = np.flatnonzero(scores > 0)
    if len(positive) > pool:
        kth = np.partition(scores[positive], len(positive) - pool)[len(positive) - pool]
        positive = positive[scores[positive] >= kth]
    return sorted(positive.tolist(), key=lambda r: (-scores[r], r))[:pool]


def exact_top10(vectors: np.ndarray, queries: np.ndarray, block: int = 100_000) -> np.ndarray:
    """Row ids of the 10 best inner products per query, over ``vectors`` a block at a time."""
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best = np.zeros((len(queries), 0), dtype=np.float32)
    for lo in range(0, len(vectors), block):
        scores = np.asarray(vectors[lo : lo + block], dtype=np.float32) @ queries.T
        top = np.argpartition(-scores, min(10, len(scores) - 1), axis=0)[:10].T
        best_ids = np.concatenate([best_ids, top + lo], axis=1)
        best = np.concatenate([best, np.take_along_axis(scores.T, top, axis=1)], axis=1)
        keep = np.argsort(-best, axis=1)[:, :10]
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
        best = np.take_along_axis(best, keep, axis=1)
    return best_ids


def build_graph(index_dir: Path, dest: Path) -> None:
    """An HNSW graph (rag/vectors.py's parameters for its size) of the build's stored vectors."""
    vectors = np.load(current_path(index_dir) / "embeddings.npy")
    started = time.perf_counter()
    print(f"building an HNSW graph of {len(vectors)} vectors (no progress from FAISS)", flush=True)
    VectorIndex.build(vectors, "hnsw").save(dest)
    print(json.dumps({"graph_build_seconds": round(time.perf_counter() - started)}), flush=True)


def serve_once(index_dir: Path, questions: list[str], graph: Path | None = None) -> dict[str, Any]:
    """Load, ask every question twice, time the second pass; then BM25 against exact.
    ``graph``: search with this vector index instead of the build's (same stored vectors)."""
    served = serve(index_dir, questions, graph)
    index, retriever, stand_in = served.index, served.retriever, served.stand_in
    before, loaded, after = served.before, served.loaded, served.after
    totals, parts = served.totals, served.parts
    n = len(index.chunks)
    # BM25 top-50 as retrieve() asks for it, against scoring every chunk.
    pool = retriever.candidates
    agree, exact_flags, searched, postings = [], [], [], []
    for q in questions:
        t0 = time.perf_counter()
        ranked, _ = index.lexical.search(q, pool)
        searched.append(time.perf_counter() - t0)
        exact_flags.append(index.lexical.exact)
        truth = exact_top(index.lexical, q, pool)
        agree.append(len(set(ranked) & set(truth)) / len(truth) if truth else float(not ranked))
        postings.append(index.lexical.postings(q))
    # Dense: the vector index against exact search over the stored (stand-in) vectors.
    qvecs = stand_in.embed_queries(questions)
    truth_ids = exact_top10(np.load(index.path / "embeddings.npy", mmap_mode="r"), qvecs)
    _, found = index.vectors.search(qvecs, 10)
    dense_recall = recall(truth_ids, found)
    return {
        "chunks": n,
        "vector_index": index.vectors.kind,
        "rss_after_load_per_chunk": {k: round((loaded[k] - before[k]) / n, 1) for k in before},
        "rss_after_questions_per_chunk": {k: round((after[k] - before[k]) / n, 1) for k in before},
        "sentence_vectors_cached": len(index.sentence_vectors),
        "retrieve_without_embedding_p50_ms": p50_ms(totals),
        "retrieve_without_embedding_p99_ms": p99_ms(totals),
        "parts_p50_ms": {k: p50_ms(v) for k, v in parts.items()},
        "parts_p99_ms": {k: p99_ms(v) for k, v in parts.items()},
        "questions": len(questions),
        "bm25_postings_per_question_p50": int(statistics.median(postings)),
        "bm25_search_top50_p50_ms": p50_ms(searched),
        "bm25_search_top50_p99_ms": p99_ms(searched),
        "bm25_top50_agreement_mean": round(float(np.mean(agree)), 4),
        "bm25_top50_agreement_min": round(float(np.min(agree)), 4),
        "bm25_exact_share": round(float(np.mean(exact_flags)), 4),
        "dense_recall_at_10_stand_in_vectors": dense_recall,
    }


def bm25_sweep(index_dir: Path, asked: list[str]) -> dict[str, Any]:
    """``LexicalIndex.search`` top-50 per IMPACT_BUDGET: p50/p99 and agreement with exact."""
    import rag.lexical

    index = load_index(index_dir)
    truths = [exact_top(index.lexical, q, 50) for q in asked]
    out: dict[str, Any] = {}
    for budget in (50_000, 100_000, 200_000, 400_000):
        rag.lexical.IMPACT_BUDGET = budget
        for q in asked:  # warm the pages this budget reads
            index.lexical.search(q, 50)
        times, agree, exact = [], [], []
        for q, truth in zip(asked, truths, strict=True):
            t0 = time.perf_counter()
            ranked, _ = index.lexical.search(q, 50)
            times.append(time.perf_counter() - t0)
            exact.append(index.lexical.exact)
            agree.append(len(set(ranked) & set(truth)) / len(truth) if truth else 1.0)
        out[str(budget)] = {
            "p50_ms": p50_ms(times),
            "p99_ms": p99_ms(times),
            "agreement_mean": round(float(np.mean(agree)), 4),
            "agreement_min": round(float(np.min(agree)), 4),
            "exact_share": round(float(np.mean(exact)), 4),
        }
        print(json.dumps({budget: out[str(budget)]}), flush=True)
    return out


def in_fresh_process(mode: str, index_dir: Path, extra: list[str] | None = None) -> Any:
    command = [sys.executable, __file__, mode, str(index_dir), *(extra or [])]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def questions(count: int) -> list[str]:
    """The dev and held-out questions, then QA validation questions up to ``count``."""
    asked = read_questions(QUESTION_FILES)
    if len(asked) < count:
        from rag.answering.qa_sets import DEFAULT_DATA_DIR, load_sets, split

        _, validation = split(load_sets(DEFAULT_DATA_DIR))
        asked += [item.question for item in validation.items[::7]][: count - len(asked)]
    return asked[:count]


# --------------------------------------------------------------------------- e5 recall


def e5_recall(count: int, queries: int) -> dict[str, Any]:
    """IVF-SQ8 (the 'auto' index from 500k chunks) on ``count`` e5-derived vectors: recall@10
    against exact float32 search for real e5 query vectors, per nprobe."""
    from scale_bench import e5_derived, real_vectors

    import rag.vectors
    from rag.answering.qa_sets import DEFAULT_DATA_DIR, load_sets, split
    from rag.embedding import E5Embedder

    _, validation = split(load_sets(DEFAULT_DATA_DIR))
    asked = [item.question for item in validation.items[::7]][:queries]
    qvecs = E5Embedder().embed_queries(asked)
    base = e5_derived(real_vectors(), count)
    truth = exact_top10(base, qvecs)
    started = time.perf_counter()
    ivf = VectorIndex.build(base, "ivf")
    build_seconds = time.perf_counter() - started
    sweep = {}
    for nprobe in (16, 32, 48, 64):
        ivf._index.nprobe = nprobe
        times, found = timed_top10(ivf.search, qvecs)
        sweep[nprobe] = {"recall@10": recall(truth, found), "p50_ms": p50_ms(times)}
        print(json.dumps({"nprobe": nprobe, **sweep[nprobe]}), flush=True)
    return {
        "label": "e5-derived vectors (real e5 passage vectors recombined with noise)",
        "vectors": count,
        "lists": int(ivf._index.nlist),
        "default_nprobe": rag.vectors.IVF_NPROBE,
        "build_seconds": round(build_seconds, 1),
        "by_nprobe": sweep,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process loads")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument(
        "--ann", default="ivf", help="vector index of the build (a 1M HNSW graph: ~1 h here)"
    )
    parser.add_argument("--e5-recall", action="store_true")
    parser.add_argument("--bm25-sweep", action="store_true", help="only: top-50 per budget")
    parser.add_argument("--build-graph", type=Path, help="only: write an HNSW graph of the build")
    parser.add_argument("--graph", type=Path, help="only: serve with this vector index instead")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale-1m.json")
    parser.add_argument("--load-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-once", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_once:
        print(json.dumps(load_once(args.load_once)))
        return
    if args.serve_once:
        print(json.dumps(serve_once(args.serve_once, questions(args.questions), args.graph)))
        return
    if args.build_graph:
        build_graph(args.dir / "index", args.build_graph)
        return
    if args.graph:
        report = {"git": git_state(), "load": [load()], "graph": str(args.graph)}
        extra = ["--questions", str(args.questions), "--graph", str(args.graph)]
        report["serve"] = in_fresh_process("--serve-once", args.dir / "index", extra)
        report["load"].append(load())
        print(json.dumps(report["serve"]), flush=True)
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        return
    report: dict[str, Any] = {"git": git_state(), "cpus": os.cpu_count(), "load": [load()]}
    if args.bm25_sweep:
        report["bm25_sweep"] = bm25_sweep(args.dir / "index", questions(args.questions))
        report["load"].append(load())
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        return
    report["build"] = ensure_build(args.dir, args.chunks, args.ann)
    print(json.dumps(report["build"]), flush=True)
    if args.build_only:
        return
    index_dir = args.dir / "index"
    manifest = Manifest.read(current_path(index_dir) / "manifest.json")
    report["index"] = {"chunks": manifest.chunk_count, "embedder": manifest.embedder}
    loads = []
    for _ in range(args.rounds):
        loads.append(in_fresh_process("--load-once", index_dir))
        print(json.dumps(loads[-1]), flush=True)
    report["load_index"] = {
        "load_seconds_median": statistics.median(x["load_seconds"] for x in loads),
        "anon_bytes_per_chunk_median": statistics.median(x["rss_per_chunk"]["anon"] for x in loads),
        "runs": loads,
    }
    report["load"].append(load())
    report["serve"] = in_fresh_process(
        "--serve-once", index_dir, ["--questions", str(args.questions)]
    )
    print(json.dumps(report["serve"]), flush=True)
    report["load"].append(load())
    if args.e5_recall:
        report["e5_recall"] = e5_recall(args.chunks, 200)
        report["load"].append(load())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
