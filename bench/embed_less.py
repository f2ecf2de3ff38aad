"""Embedding less: answer quality and latency of the ways to get sentence vectors, side by side.

Usage:
    python bench/embed_less.py                 # bundled dev + held-out, 300 SQuAD-layout questions
    python bench/embed_less.py --squad-limit 0 # bundled questions only
    python bench/embed_less.py --no-bundled --variants stored 'lazy d8' --squad-limit 150

The index embeds chunks only (1.0 text per chunk). Variants differ in which sentence vectors
exist when a question is answered:

- ``stored``: every sentence embedded up front, best-sentence scores for every candidate: what
  builds did before (4.4 texts per chunk); the quality baseline.
- ``lazy dN``: sentences embedded on first use, best-sentence scores for the N best candidates
  by chunk cosine + BM25 (at least the k asked for; answers ask for 8, so the sentences of
  ``d8`` are exactly those the answer layer reads).
- ``lazy no-retrieval``: no best-sentence score in retrieval; only the answer layer embeds.

Each question is answered once per variant in extractive mode, the same scoring as
``rag eval --answers`` (bundled sets) and ``bench/squad_eval.py`` (validation side of the shared
split, "own paragraph removed" questions included, a fixed-seed sample). Lazy variants empty the
sentence cache and the query cache before each question, so latency and "sentences embedded"
are those of a question about passages nobody asked about before (the worst case). Results go
to bench/results/embed_less.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from squad_eval import git_commit, percentile, to_question

from rag.answer import Answerer
from rag.answering.qa_sets import DEFAULT_DATA_DIR, SPLIT_SEED, lay_out, load_sets, split
from rag.embedding import E5Embedder
from rag.engine import Engine, load_engine
from rag.evaluation import (
    Question,
    answer_scores,
    holds_gold,
    mean_present,
    outcome_of,
    read_questions,
)
from rag.index import _key as text_key
from rag.retrieval import Retriever
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "stored": {"sentence_depth": None},
    "lazy d8": {"sentence_depth": 8},
    "lazy d12": {"sentence_depth": 12},
    "lazy d16": {"sentence_depth": 16},
    "lazy no-retrieval": {"sentence_weight": 0.0},
}


def preload_from(engine: Engine, build: Path) -> int:
    """Fill the sentence cache from an older build that embedded every sentence, matching by
    the exact text (its keys.txt): quality runs on a busy machine without re-embedding."""
    keys = (build / "keys.txt").read_text(encoding="utf-8").split()
    matrix = np.load(build / "embeddings.npy", mmap_mode="r")
    row_of = {key: n for n, key in enumerate(keys)}
    index = engine.index
    rows, found = [], []
    for row in range(len(index.sentences)):
        n = row_of.get(text_key(index.sentence_text(row)))
        if n is not None:
            rows.append(row)
            found.append(np.asarray(matrix[n]))
    index.sentence_vectors.preload(rows, np.stack(found))
    return len(rows)


def run_variant(
    engine: Engine,
    name: str,
    params: dict[str, Any],
    questions: Sequence[Question],
    preloaded: bool = False,
) -> dict[str, Any]:
    """Answer ``questions`` with one variant; quality table, latency and embedding counts."""
    index = engine.index
    retriever = Retriever(index, engine.embedder, **params)
    answerer = Answerer(dataclasses.replace(engine, retriever=retriever))
    vectors = index.sentence_vectors
    stored = name == "stored"
    preload = 0.0
    if stored and not preloaded:
        t0 = time.perf_counter()
        vectors.clear()
        vectors[list(range(len(index.sentences)))]  # what a build used to embed
        preload = time.perf_counter() - t0
    rows: list[tuple[list[str], dict[str, float]]] = []
    outcomes: list[str] = []
    latencies: list[float] = []
    embedded: list[int] = []
    for q in questions:
        if not stored and not preloaded:
            vectors.clear()
        retriever._cache.clear()
        before = vectors.embedded
        t0 = time.perf_counter()
        answer = answerer.answer(q.question, mode="extractive")
        latencies.append(time.perf_counter() - t0)
        embedded.append(vectors.embedded - before)
        scores = answer_scores(q, answer, index.documents)
        if q.answerable and q.answer_spans:
            spans = [(h.doc, h.start, h.end) for h in retriever.retrieve(q.question, 5)]
            scores["passage_hit@5"] = float(any(holds_gold(s, q) for s in spans))
        rows.append(([q.type], scores))
        outcomes.append(outcome_of(answer))
    table = mean_present(rows, outcomes)
    return {
        "variant": name,
        "params": params,
        "table": table,
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
        "latency_p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "sentences_embedded_per_question": round(statistics.mean(embedded), 2),
        "build_texts_per_chunk": round(
            (len(index.chunks) + (len(index.sentences) if stored else 0)) / len(index.chunks), 3
        ),
        "preload_seconds": round(preload, 1),
    }


def compare(
    engine: Engine,
    label: str,
    sets: dict[str, list[Question]],
    variants: Sequence[str],
    preloaded: bool = False,
) -> list[dict[str, Any]]:
    results = []
    for name in variants:
        params = VARIANTS[name]
        for set_name, questions in sets.items():
            t0 = time.perf_counter()
            result = {"corpus": label, "set": set_name, "n": len(questions)}
            result.update(run_variant(engine, name, params, questions, preloaded))
            result["vectors_preloaded"] = preloaded
            result["seconds"] = round(time.perf_counter() - t0, 1)
            all_ = result["table"]["all"]
            brief = {k: all_.get(k) for k in ("accuracy", "sentence_accuracy", "short_f1")}
            print(
                json.dumps(
                    {k: result[k] for k in ("corpus", "set", "variant", "latency_p50_ms")}
                    | {"sentences/q": result["sentences_embedded_per_question"]}
                    | brief,
                    ensure_ascii=False,
                ),
                flush=True,
            )
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--eval",
        nargs="+",
        type=Path,
        default=[REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl"],
    )
    parser.add_argument("--squad-limit", type=int, default=300)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rag-embed-less" / "validation",
        help="where the SQuAD-layout corpus and its (chunks-only) index go; not the shared "
        "/work/cache/qa, whose index other checkouts read in the older format",
    )
    parser.add_argument(
        "--vectors-from",
        type=Path,
        help="an older build of the SQuAD-layout corpus with every sentence embedded: its "
        "vectors fill the cache (quality only; latency and embedding counts then mean nothing)",
    )
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled sets")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "embed_less.json")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    e5 = E5Embedder()
    results: list[dict[str, Any]] = []
    if not args.no_bundled:
        with tempfile.TemporaryDirectory() as scratch:
            engine = load_engine(Settings(index_dir=Path(scratch)), embedder=e5)
            sets = {p.stem: read_questions(p, engine.index.documents) for p in args.eval}
            results += compare(engine, "bundled", sets, args.variants)
    if args.squad_limit:
        _, validation = split(load_sets(DEFAULT_DATA_DIR))
        corpus = lay_out(validation, args.work)
        t0 = time.perf_counter()
        engine = load_engine(
            Settings(corpus_dir=corpus.corpus_dir, index_dir=corpus.index_dir), embedder=e5
        )
        print(f"squad index: {len(engine.index.chunks)} chunks, {time.perf_counter() - t0:.0f} s")
        items = validation.items
        if args.squad_limit < len(items):
            keep = set(random.Random(SPLIT_SEED).sample(range(len(items)), args.squad_limit))
            items = [item for i, item in enumerate(items) if i in keep]
        questions = [to_question(corpus, item, engine.index.documents) for item in items]
        sample = {f"sample{len(questions)}": questions}
        preloaded = False
        if args.vectors_from:
            count = preload_from(engine, args.vectors_from)
            print(f"preloaded {count} of {len(engine.index.sentences)} sentence vectors")
            preloaded = count == len(engine.index.sentences)
        results += compare(engine, "squad-validation", sample, args.variants, preloaded)
    report = {
        "results": results,
        "git": git_commit(),
        "cpus": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
