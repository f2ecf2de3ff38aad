"""ANN recall@10 at a million e5-derived vectors: HNSW-SQ8 and IVF-SQ8, both re-scored exactly.

Usage:
    python bench/ann_1m.py hnsw 32 80        # M, efConstruction; sweeps efSearch x re-score
    python bench/ann_1m.py ivf 2048 1        # lists, spherical k-means (1/0); sweeps nprobe

Base vectors: bench/scale_bench.py's ``e5_derived`` (real multilingual-e5-small passage vectors
of the QA corpora recombined with noise); queries: 200 real e5 query vectors of QA validation
questions; truth: exact float32 inner product. Searched on one thread, as a serving thread
searches; built on ``ANN_BUILD_THREADS`` (1).
Prints one JSON line per setting (figures in bench/README.md, "Scale at a million chunks").
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_1m import exact_top10
from scale_bench import e5_derived, real_vectors, recall, timed_top10

import rag.vectors
from rag.answering.qa_sets import DEFAULT_DATA_DIR, load_sets, split
from rag.embedding import E5Embedder
from rag.vectors import VectorIndex


def main() -> None:
    kind, first, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
    faiss.omp_set_num_threads(int(os.environ.get("ANN_BUILD_THREADS", "1")))
    _, validation = split(load_sets(DEFAULT_DATA_DIR))
    asked = [item.question for item in validation.items[::7]][:200]
    queries = E5Embedder().embed_queries(asked)
    base = e5_derived(real_vectors(), n)
    truth = exact_top10(base, queries)
    eight_bit = faiss.ScalarQuantizer.QT_8bit
    started = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWSQ(384, eight_bit, first, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = second
        index.train(base)
        for lo in range(0, n, 100_000):  # progress: a million takes ~12 min on one core
            index.add(base[lo : lo + 100_000])
            seconds = round(time.perf_counter() - started)
            print(json.dumps({"added": lo + 100_000, "seconds": seconds}), flush=True)
        settings = [(128, 50), (128, 128), (256, 50), (256, 256), (512, 100), (512, 512)]
    else:
        quantizer = faiss.IndexFlatIP(384)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, 384, first, eight_bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.niter = 10
        index.cp.spherical = bool(second)
        step = max(1, n // (first * 64))
        index.train(np.ascontiguousarray(base[::step][: first * 64]))
        index.add(base)
        settings = [(nprobe, rr) for nprobe in (32, 64, 128) for rr in (50, 100)]
    print(json.dumps({"build_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    faiss.omp_set_num_threads(1)  # searched one query per thread, as the service does
    searcher = VectorIndex(index, "hnsw" if kind == "hnsw" else "ivf", base)
    for breadth, rerank in settings:
        if kind == "hnsw":
            index.hnsw.efSearch = breadth
        else:
            index.nprobe = breadth
        rag.vectors.RERANK = rerank
        times, found = timed_top10(searcher.search, queries)
        row = {"kind": kind, "params": [first, second], "breadth": breadth, "rerank": rerank}
        row |= {"recall@10": recall(truth, found), "p50_ms": 1000 * np.median(times)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
