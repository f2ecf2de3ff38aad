"""Choose the second look's three numbers (top, weight, margin) on half of the validation split.

Usage: python -m rag.answering.cross.tune [--work /work/cache/qa] [--limit N]

Every validation question goes through the real extractive answer with the second look
replaced by a recorder, which keeps the candidates the look would have seen. Each recorded
question is labelled by whether its first candidate holds a gold answer (kept paragraphs only);
the validation articles are halved with a fixed seed, the grid is searched on one half, and the
chosen setting is reported on the other. The cheapest setting within ``SLACK`` of the best
accuracy wins: each pair read costs ~9 ms. Writes ``models/cross.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import Answerer
from rag.answering.cross.check import SETTINGS, close_call, pick
from rag.answering.cross.encoder import MODELS_DIR, load_encoder
from rag.answering.features import Candidate
from rag.answering.qa_sets import SPLIT_SEED, lay_out, load_sets, split
from rag.answering.selector import load_models
from rag.answering.train_evidence import _holds
from rag.engine import load_engine
from rag.settings import Settings

TOPS = (2, 3, 4, 5)
WEIGHTS = (0.5, 1.0, 2.0)
MARGINS = (0.25, 0.5, 1.0, 1.5, 2.0, 1e9)  # 1e9: every question
SLACK = 0.002  # accuracy given up for a cheaper setting


@dataclass
class Look:
    """One recorded second look: the candidates' texts, ranker scores and labels."""

    question: str
    article: str
    kept: bool
    texts: list[str]
    scores: list[float]
    labels: list[int]
    logits: np.ndarray | None = None


class Recorder:
    """Stands in for ``CrossCheck``: keeps what it is shown and changes nothing."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[Candidate, float]]] = []

    def reorder(
        self,
        question: str,
        ranked: list[tuple[Candidate, float]],
        text: Callable[[Candidate], str],
    ) -> list[tuple[Candidate, float]]:
        self.calls.append(ranked[: max(TOPS)])
        return ranked


def record(work: Path, limit: int | None) -> list[Look]:
    """Answer the validation questions and keep each one-look question's candidates."""
    _, val = split(load_sets())
    corpus = lay_out(val, work / "validation")
    engine = load_engine(Settings(corpus_dir=corpus.corpus_dir, index_dir=corpus.index_dir))
    answerer = Answerer(engine)
    recorder = Recorder()
    load_models().cross = recorder
    items = [i for i in val.items if i.question.strip()][:limit]
    looks: list[Look] = []
    started = time.perf_counter()
    for n, item in enumerate(items, 1):
        recorder.calls = []
        answerer.answer(item.question, mode="extractive")
        if len(recorder.calls) == 1:  # a question answered part by part is left out
            cands = recorder.calls[0]
            kept = corpus.answerable(item)
            gold = corpus.gold_spans(item) if kept else []
            para = val.paragraphs[item.paragraph]
            looks.append(
                Look(
                    item.question,
                    f"{para.source}/{para.article}",
                    kept,
                    [c.sentence.text for c, _ in cands],
                    [s for _, s in cands],
                    [int(kept and _holds(c, gold)) for c, _ in cands],
                )
            )
        if n % 200 == 0 or n == len(items):
            rate = n / (time.perf_counter() - started)
            print(f"  answered {n}/{len(items)} ({rate:.1f} questions/s)", file=sys.stderr)
    return looks


def read_all(looks: Sequence[Look]) -> None:
    encoder = load_encoder()
    if encoder is None:
        raise SystemExit("no cross-encoder in rag/answering/models: train one first")
    started = time.perf_counter()
    for n, look in enumerate(looks, 1):
        look.logits = encoder.score(look.question, look.texts)
        if n % 200 == 0 or n == len(looks):
            rate = n / (time.perf_counter() - started)
            print(f"  read {n}/{len(looks)} ({rate:.1f} questions/s)", file=sys.stderr)


def evaluate(looks: Sequence[Look], top: int, weight: float, margin: float) -> dict[str, float]:
    """Top-1 accuracy on kept questions with this setting, before it, and the share re-read."""
    kept = [x for x in looks if x.kept]
    right = before = reread = 0
    for x in kept:
        before += x.labels[0]
        if close_call(list(zip(x.texts, x.scores, strict=True)), margin):
            assert x.logits is not None
            best = pick(np.array(x.scores[:top]), x.logits[:top], weight)
            right += x.labels[best]
        else:
            right += x.labels[0]
    for x in looks:
        reread += close_call(list(zip(x.texts, x.scores, strict=True)), margin)
    n = max(1, len(kept))
    return {
        "questions": len(kept),
        "before": round(before / n, 4),
        "after": round(right / n, 4),
        "reread_share": round(reread / max(1, len(looks)), 4),
    }


def choose(looks: Sequence[Look]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    grid = []
    for top in TOPS:
        for weight in WEIGHTS:
            for margin in MARGINS:
                r = evaluate(looks, top, weight, margin)
                cost = r["reread_share"] * top
                grid.append({"top": top, "weight": weight, "margin": margin, **r, "cost": cost})
    best = max(g["after"] for g in grid)
    chosen = min((g for g in grid if g["after"] >= best - SLACK), key=lambda g: g["cost"])
    return chosen, grid


def _setting(row: dict[str, Any]) -> tuple[int, float, float]:
    return int(row["top"]), float(row["weight"]), float(row["margin"])


def cross_fit(looks: Sequence[Look]) -> dict[str, Any]:
    """Each half of the articles (fixed seed) chooses a setting that the other half judges, so
    the held-out figure measures the procedure, not one lucky half."""
    articles = sorted({x.article for x in looks})
    random.Random(SPLIT_SEED).shuffle(articles)
    first = set(articles[: len(articles) // 2])
    a = [x for x in looks if x.article in first]
    b = [x for x in looks if x.article not in first]
    halves: list[dict[str, Any]] = []
    before = after = 0.0
    for tune, other in ((a, b), (b, a)):
        setting = _setting(choose(tune)[0])
        held = evaluate(other, *setting)
        halves.append({"chosen": setting, "tuned_on": evaluate(tune, *setting), "held_out": held})
        before += held["before"] * held["questions"]
        after += held["after"] * held["questions"]
    n = max(1, len([x for x in looks if x.kept]))
    return {
        "questions": n,
        "before": round(before / n, 4),
        "after": round(after / n, 4),
        "halves": halves,
    }


def _looks(args: argparse.Namespace) -> list[Look]:
    """Recorded and read afresh, or reused from ``--looks`` (the grid search alone is quick)."""
    if args.looks and args.looks.exists():
        rows = json.loads(args.looks.read_text(encoding="utf-8"))
        return [Look(**{**x, "logits": np.array(x["logits"])}) for x in rows]
    looks = record(args.work, args.limit)
    read_all(looks)
    if args.looks:
        rows = [{**x.__dict__, "logits": np.asarray(x.logits).tolist()} for x in looks]
        args.looks.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return looks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/work/cache/qa"))
    parser.add_argument("--limit", type=int, help="only the first N validation questions")
    parser.add_argument("--out", type=Path, default=MODELS_DIR / SETTINGS)
    parser.add_argument("--looks", type=Path, help="keep the recorded looks here; reuse if present")
    args = parser.parse_args(argv)
    looks = _looks(args)
    chosen, grid = choose(looks)
    setting = _setting(chosen)
    fitted = cross_fit(looks)
    report = {
        "chosen": {"top": setting[0], "weight": setting[1], "margin": setting[2]},
        "slack": SLACK,
        "seed": SPLIT_SEED,
        "cross_fitted": fitted,
        "all": evaluate(looks, *setting),
        "grid_on_all": grid,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for h in fitted["halves"]:
        print("chosen", h["chosen"], "on one half:", h["tuned_on"], "other half:", h["held_out"])
    print("cross-fitted", {k: v for k, v in fitted.items() if k != "halves"})
    print("all", report["all"])
    print("chosen", report["chosen"], "->", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
