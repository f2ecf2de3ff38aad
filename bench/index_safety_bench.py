"""What index safety costs: load time with and without the checksum and consistency checks,
and the embedding estimate a 50 MB article gets before its build starts.

Usage: python bench/index_safety_bench.py [--chunks 20000] [--rounds 7] [--megabytes 50]

1. A synthetic corpus of about ``--chunks`` chunks is indexed with the fast hashed n-gram
   STAND-IN embedder of ``core_bench.py`` (only the vectors are stand-ins; every file is the
   real one). ``load_index`` is then timed with its checks and with them switched off,
   alternating, ``--rounds`` times each; medians and their ratio are reported, plus the
   bundled index the same way.
2. A 50 MB single-file article (recombined clauses of the bundled articles, with punctuation,
   as a real long file would have) is chunked and its sentence table made, as a build does
   before embedding: the number of texts to embed and the estimate the build prints. The same
   size as one line with no punctuation shows the hard maximum chunk length at work.

Results go to bench/results/index_safety.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_bench import HashNgramEmbedder, source_clauses, write_synthetic_corpus

import rag.index
from rag.chunking import chunk_corpus, hard_max_chars
from rag.corpus import Corpus, Document
from rag.embedding import E5Embedder
from rag.index import (
    NOMINAL_TEXTS_PER_SECOND,
    IndexConfig,
    build_index,
    load_index,
    passage_text,
    sentence_table,
)
from rag.settings import BUNDLED_CORPUS

RESULTS = Path(__file__).resolve().parent / "results" / "index_safety.json"


def time_loads(index_dir: Path, rounds: int) -> dict[str, float]:
    """Median seconds of ``load_index`` checked and unchecked, alternating runs."""
    checked: list[float] = []
    unchecked: list[float] = []

    def once(samples: list[float]) -> None:
        gc.collect()  # the previous run's index is garbage: not this run's cost
        started = time.perf_counter()
        load_index(index_dir)
        samples.append(time.perf_counter() - started)

    once(checked)  # warm the page cache and imports first; not counted
    checked.clear()
    for _ in range(rounds):
        once(checked)
        with (
            patch.object(rag.index, "checksum_problem", lambda *a, **k: None),
            patch.object(rag.index, "check_index", lambda *a, **k: None),
        ):
            once(unchecked)
    with_checks, without = statistics.median(checked), statistics.median(unchecked)
    return {
        "load_checked_ms": round(with_checks * 1000, 1),
        "load_unchecked_ms": round(without * 1000, 1),
        "ratio": round(with_checks / without, 3),
    }


def dir_megabytes(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def long_article(megabytes: int, make_line: Callable[[random.Random, list[str]], str]) -> Document:
    clauses = source_clauses(BUNDLED_CORPUS)
    rng = random.Random(11)
    parts: list[str] = []
    size = 0
    while size < megabytes * 2**20:
        line = make_line(rng, clauses)
        parts.append(line)
        size += len(line.encode("utf-8"))
    text = "长文件\n\n" + "".join(parts)
    return Document("long.txt", Path("long.txt"), text, "长文件", None, ((4, len(text)),), "0" * 64)


def texts_to_embed(doc: Document) -> dict[str, Any]:
    """What a build of this one article would embed, computed the way ``build_index`` does."""
    started = time.perf_counter()
    chunks = chunk_corpus(Corpus((doc,), ()))
    sentences, _ = sentence_table(chunks, {doc.id: doc.text})
    texts = {passage_text(c) for c in chunks} | {doc.text[s.start : s.end] for s in sentences}
    seconds = len(texts) / NOMINAL_TEXTS_PER_SECOND
    return {
        "characters": len(doc.text),
        "chunks": len(chunks),
        "longest_chunk": max(len(c.text) for c in chunks),
        "hard_max": hard_max_chars(200),
        "texts_to_embed": len(texts),
        "estimated_hours": round(seconds / 3600, 1),
        "prepare_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, Any] = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_index(IndexConfig(BUNDLED_CORPUS, work / "bundled"), E5Embedder())
        results["bundled"] = {
            **time_loads(work / "bundled", args.rounds),
            "chunks": len(load_index(work / "bundled").chunks),
            "megabytes": dir_megabytes(work / "bundled" / "builds"),
        }
        write_synthetic_corpus(work / "corpus", args.chunks)
        build_index(IndexConfig(work / "corpus", work / "synthetic"), HashNgramEmbedder())
        results["synthetic"] = {
            **time_loads(work / "synthetic", args.rounds),
            "chunks": len(load_index(work / "synthetic").chunks),
            "megabytes": dir_megabytes(work / "synthetic" / "builds"),
        }

    def punctuated(rng: random.Random, clauses: list[str]) -> str:
        return (
            "，".join(rng.sample(clauses, rng.randint(1, 3)))
            + rng.choice("。。。！？")
            + ("\n" if rng.random() < 0.1 else "")
        )

    def unpunctuated(rng: random.Random, clauses: list[str]) -> str:
        return "".join(c.replace("，", "").replace("。", "") for c in rng.sample(clauses, 3))

    results["50MB_punctuated"] = texts_to_embed(long_article(args.megabytes, punctuated))
    results["50MB_one_line"] = texts_to_embed(long_article(args.megabytes, unpunctuated))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("| index | chunks | MB | load with checks | without | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("bundled", "synthetic"):
        r = results[name]
        print(
            f"| {name} | {r['chunks']} | {r['megabytes']} | {r['load_checked_ms']} ms "
            f"| {r['load_unchecked_ms']} ms | {r['ratio']} |"
        )
    print()
    print("| 50 MB article | chunks | longest chunk | texts to embed | estimate |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("50MB_punctuated", "50MB_one_line"):
        r = results[name]
        print(
            f"| {name} | {r['chunks']} | {r['longest_chunk']} (max {r['hard_max']}) "
            f"| {r['texts_to_embed']} | {r['estimated_hours']} h |"
        )


if __name__ == "__main__":
    main()
