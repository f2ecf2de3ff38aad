"""Near-miss questions end to end: how often the extractive answer layer declines a question
that its passages almost answer.

Usage:
    python bench/near_miss_eval.py                 # the validation near misses
    python bench/near_miss_eval.py --out /tmp/x.json

The near misses are those the training script measures (``rag/answering/near_miss.py``, the
same share and seed as ``train_evidence.py``'s validation run): answerable QA validation
questions with one year, number or name changed to one their paragraph never states. Each
goes through the real ``Answerer`` on the cached validation corpus and index
(``/work/cache/qa/validation``, built by ``squad_eval.py`` when missing). Reported: abstention
("related" or "none") by kind of change, and the outcomes and reasons behind it. JSON goes to
bench/results/near_miss_validation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.answer import Answerer
from rag.answering.near_miss import NearMiss, near_misses
from rag.answering.qa_sets import REMOVED_SHARE, QACorpus, lay_out, load_sets, split
from rag.answering.train_evidence import NEAR_MISS_SHARE, SEED
from rag.engine import load_engine
from rag.evaluation import outcome_of
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
WORK = Path("/work/cache/qa/validation")


def validation_near_misses(corpus: QACorpus, seed: int = SEED + 1) -> list[NearMiss]:
    """The near misses of ``train_evidence.collect`` on the validation side: answerable
    questions in its shuffled order, changed with the same share and seed."""
    items = list(corpus.qa.items)
    random.Random(seed).shuffle(items)
    kept = [i for i in items if corpus.answerable(i)]
    corpus_text = "\n".join(
        p.text for pid, p in corpus.qa.paragraphs.items() if pid not in corpus.removed
    )
    pairs = [(i.question, corpus.qa.paragraphs[i.paragraph].text) for i in kept]
    return near_misses(pairs, corpus_text, NEAR_MISS_SHARE, seed)


def run(work: Path, progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started, load_before = time.perf_counter(), os.getloadavg()
    _, validation = split(load_sets())
    corpus = lay_out(validation, work, REMOVED_SHARE)
    engine = load_engine(
        Settings(corpus_dir=corpus.corpus_dir, index_dir=corpus.index_dir), progress=progress
    )
    answerer = Answerer(engine)
    misses = validation_near_misses(corpus)
    records = []
    for miss in tqdm(misses, desc="near misses", unit="q", disable=not progress, file=sys.stderr):
        answer = answerer.answer(miss.question, mode="extractive")
        outcome = outcome_of(answer)
        records.append(
            {
                "change": miss.change,
                "question": miss.question,
                "original": miss.original,
                "outcome": outcome,
                "reason": "; ".join(answer.unsupported),
                "cited": answer.citations[0].quote if answer.citations else "",
            }
        )
    by_change: dict[str, dict[str, Any]] = {}
    for change in sorted({r["change"] for r in records}):
        rows = [r for r in records if r["change"] == change]
        outcomes = Counter(r["outcome"] for r in rows)
        by_change[change] = {
            "n": len(rows),
            "abstention": round(sum(r["outcome"] != "answered" for r in rows) / len(rows), 3),
            "outcomes": dict(outcomes),
        }
    everything = sum(r["outcome"] != "answered" for r in records) / max(1, len(records))
    report = {
        "set": "validation",
        "work_dir": str(work),
        "seed": SEED + 1,
        "share": NEAR_MISS_SHARE,
        "questions": len(records),
        "abstention": round(everything, 3),
        "by_change": by_change,
        "cpus": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return report, records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=WORK, help="QA corpus and index folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "near_miss_validation.json")
    parser.add_argument("--records", type=Path, help="also write one JSON line per question here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    report, records = run(args.work, progress=not args.quiet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if args.records:
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        args.records.write_text("".join(lines), encoding="utf-8")
    print(f"near misses: {report['questions']}, abstention {report['abstention']:.3f}")
    for change, row in report["by_change"].items():
        shown = f"n={row['n']:>4}  abstention {row['abstention']:.3f}"
        print(f"  {change:<8} {shown}  {row['outcomes']}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
