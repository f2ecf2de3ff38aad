"""Choose the second look's numbers on the validation split: where and how it reorders (top,
weight, margin) and when it declines (gate, cut).

Usage: python -m rag.answering.cross.tune [--work /work/cache/qa] [--limit N] [--looks FILE]

Every validation question goes through the real extractive answer with the second look
replaced by a recorder, which keeps the candidates the look would have seen and the judge's
probability; the bundled dev and held-out questions are recorded the same way over the bundled
articles. Each QA look is labelled by whether its first candidate holds a gold answer (kept
paragraphs only). The reorder setting is the cheapest within ``SLACK`` of the best top-1 (each
pair read costs ~9 ms); the veto's cut is the highest that declines at most ``BUDGET`` of the
answered kept questions and keeps each bundled set within ``BUNDLED_LIMIT`` false abstention,
at the gate that then declines most paragraph-removed questions. Cross-fitting over the two
halves of the validation articles (fixed seed) reports each half's choice on the other half.
Writes ``models/cross.json``; ``--looks`` keeps the recorded looks for a quick re-run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import Answerer
from rag.answering.cross.check import SETTINGS, Verdict, close_call, pick, read_count
from rag.answering.cross.encoder import MODELS_DIR, load_encoder
from rag.answering.cross.train import checkout_commit
from rag.answering.features import Candidate
from rag.answering.qa_sets import SPLIT_SEED, lay_out, load_sets, split
from rag.answering.selector import load_models
from rag.answering.train_evidence import _holds
from rag.citations import Answer
from rag.engine import load_engine
from rag.settings import Settings

TOPS = (2, 3, 4, 5)
WEIGHTS = (0.5, 1.0, 2.0)
MARGINS = (0.25, 0.5, 1.0, 1.5, 2.0, 1e9)  # 1e9: every question
SLACK = 0.002  # accuracy given up for a cheaper setting
GATES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.01)  # 0: close calls only; 1.01: every answer
BUDGET = 0.01  # share of answered kept questions the cut may turn into "not answered"


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
    confidence: float = 1.0  # the judge's probability that the first candidate answers

    def close(self, margin: float) -> bool:
        return close_call(list(zip(self.texts, self.scores, strict=True)), margin)


class Recorder:
    """Stands in for ``CrossCheck``: keeps what it is shown and changes nothing."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[Candidate, float]]] = []
        load_models().cross = self

    def answer(self, answerer: Answerer, question: str) -> tuple[Answer, Look | None]:
        """The extractive answer and, for a question with one look (a question answered part
        by part is left out), that look's candidates, unlabelled."""
        self.calls = []
        answer = answerer.answer(question, mode="extractive")
        if len(self.calls) != 1:
            return answer, None
        cands = self.calls[0]
        look = Look(
            question,
            "",
            True,
            [c.sentence.text for c, _ in cands],
            [s for _, s in cands],
            [0] * len(cands),
            confidence=float(answer.confidence or 0.0),
        )
        return answer, look

    def look(
        self,
        question: str,
        ranked: list[tuple[Candidate, float]],
        text: Callable[[Candidate], str],
        probability: float,
    ) -> Verdict[Candidate]:
        self.calls.append(ranked[: max(TOPS)])
        return Verdict(ranked, True)


def record(work: Path, limit: int | None) -> list[Look]:
    """Answer the validation questions and keep each one-look question's candidates."""
    _, val = split(load_sets())
    corpus = lay_out(val, work / "validation")
    engine = load_engine(Settings(corpus_dir=corpus.corpus_dir, index_dir=corpus.index_dir))
    answerer = Answerer(engine)
    recorder = Recorder()
    items = [i for i in val.items if i.question.strip()][:limit]
    looks: list[Look] = []
    started = time.perf_counter()
    for n, item in enumerate(items, 1):
        _, look = recorder.answer(answerer, item.question)
        if look is not None:
            kept = corpus.answerable(item)
            gold = corpus.gold_spans(item) if kept else []
            para = val.paragraphs[item.paragraph]
            look.article, look.kept = f"{para.source}/{para.article}", kept
            look.labels = [int(kept and _holds(c, gold)) for c, _ in recorder.calls[0]]
            looks.append(look)
        if n % 200 == 0 or n == len(items):
            rate = n / (time.perf_counter() - started)
            print(f"  answered {n}/{len(items)} ({rate:.1f} questions/s)", file=sys.stderr)
    return looks


REPO = Path(__file__).resolve().parents[3]
BUNDLED_SETS = (REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl")
BUNDLED_LIMIT = 0.05  # false abstention each bundled set must stay within


@dataclass
class Bundled:
    """One bundled question set: its answerable questions, how many are already not answered,
    and the looks of those answered (the cut must not push it past ``BUNDLED_LIMIT``)."""

    name: str
    answerable: int
    abstained: int
    looks: list[Look]


def record_bundled(work: Path, paths: Sequence[Path]) -> list[Bundled]:
    """The answerable questions of the bundled sets, answered over the bundled articles."""
    settings = Settings(index_dir=work / "bundled-index")
    answerer = Answerer(load_engine(settings))
    recorder = Recorder()
    out = []
    for path in paths:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        rows = [r for r in rows if r.get("answerable", True)]
        abstained = 0
        looks: list[Look] = []
        for row in rows:
            answer, look = recorder.answer(answerer, row["question"])
            abstained += not answer.answerable
            if look is not None:
                look.article = path.stem
                looks.append(look)
        out.append(Bundled(path.stem, len(rows), abstained, looks))
    return out


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
        if x.close(margin):
            assert x.logits is not None
            best = pick(np.array(x.scores[:top]), x.logits[:top], weight)
            right += x.labels[best]
        else:
            right += x.labels[0]
    reread = sum(x.close(margin) for x in looks)
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


def best_read(look: Look, setting: tuple[int, float, float], gate: float) -> float | None:
    """The highest logit among the sentences the look reads (None when it reads none)."""
    top, _, margin = setting
    n = read_count(look.close(margin), look.confidence, top, gate)
    return float(np.max(np.asarray(look.logits)[:n])) if n else None


def refusals(
    looks: Sequence[Look], setting: tuple[int, float, float], gate: float, cut: float
) -> dict[str, float]:
    """Shares of kept and of removed questions the cut turns into "not answered"."""
    read = [(x.kept, best_read(x, setting, gate)) for x in looks]
    out: dict[str, float] = {}
    for name, kept in (("kept", True), ("removed", False)):
        values = [v for k, v in read if k is kept]
        refused = sum(v is not None and v < cut for v in values)
        out[f"{name}_questions"] = len(values)
        out[f"{name}_refused"] = round(refused / max(1, len(values)), 4)
    out["read_share"] = round(sum(v is not None for _, v in read) / max(1, len(read)), 4)
    return out


def _highest_cut(values: Sequence[float], allowed: int) -> float:
    """The highest cut that refuses at most ``allowed`` of ``values`` (refused: below it)."""
    ordered = sorted(values)
    if allowed < 0:
        return -math.inf
    return ordered[allowed] if allowed < len(ordered) else math.inf


def choose_cut(
    looks: Sequence[Look], setting: tuple[int, float, float], bundled: Sequence[Bundled] = ()
) -> tuple[float, float]:
    """(gate, cut): for each gate the highest cut that refuses at most ``BUDGET`` of the kept
    questions and keeps each bundled set's false abstention within ``BUNDLED_LIMIT``, then the
    gate that refuses most removed ones (the cheaper on a tie)."""
    kept = [x for x in looks if x.kept]
    allowed = int(BUDGET * len(kept))
    best: tuple[float, float, float, float] | None = None
    for gate in GATES:
        values = [v for x in kept if (v := best_read(x, setting, gate)) is not None]
        if not values:
            continue
        cut = _highest_cut(values, allowed)
        for b in bundled:
            read = [v for x in b.looks if (v := best_read(x, setting, gate)) is not None]
            room = int(BUNDLED_LIMIT * b.answerable) - b.abstained
            cut = min(cut, _highest_cut(read, room))
        r = refusals(looks, setting, gate, cut)
        key = (r["removed_refused"], -r["read_share"])
        if best is None or key > best[2:]:
            best = (gate, cut, *key)
    return (best[0], best[1]) if best else (0.0, -math.inf)


def _setting(row: dict[str, Any]) -> tuple[int, float, float]:
    return int(row["top"]), float(row["weight"]), float(row["margin"])


def cross_fit(looks: Sequence[Look], bundled: Sequence[Bundled] = ()) -> dict[str, Any]:
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
        gate, cut = choose_cut(tune, setting, bundled)
        halves.append(
            {
                "chosen": [*setting, gate, round(cut, 4)],
                "tuned_on": {**evaluate(tune, *setting), **refusals(tune, setting, gate, cut)},
                "held_out": {**held, **refusals(other, setting, gate, cut)},
            }
        )
        before += held["before"] * held["questions"]
        after += held["after"] * held["questions"]
    n = max(1, len([x for x in looks if x.kept]))
    return {
        "questions": n,
        "before": round(before / n, 4),
        "after": round(after / n, 4),
        "halves": halves,
    }


def _rows(looks: Sequence[Look]) -> list[dict[str, Any]]:
    return [{**x.__dict__, "logits": np.asarray(x.logits).tolist()} for x in looks]


def _from_rows(rows: Sequence[dict[str, Any]]) -> list[Look]:
    return [Look(**{**x, "logits": np.array(x["logits"])}) for x in rows]


def _looks(args: argparse.Namespace) -> tuple[list[Look], list[Bundled]]:
    """Recorded and read afresh, or reused from ``--looks`` (the grid search alone is quick)."""
    if args.looks and args.looks.exists():
        saved = json.loads(args.looks.read_text(encoding="utf-8"))
        bundled = [
            Bundled(b["name"], b["answerable"], b["abstained"], _from_rows(b["looks"]))
            for b in saved["bundled"]
        ]
        return _from_rows(saved["validation"]), bundled
    looks = record(args.work, args.limit)
    bundled = record_bundled(args.work, args.bundled)
    read_all([*looks, *(x for b in bundled for x in b.looks)])
    if args.looks:
        saved = {
            "validation": _rows(looks),
            "bundled": [{**b.__dict__, "looks": _rows(b.looks)} for b in bundled],
        }
        args.looks.write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
    return looks, bundled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/work/cache/qa"))
    parser.add_argument("--limit", type=int, help="only the first N validation questions")
    parser.add_argument("--out", type=Path, default=MODELS_DIR / SETTINGS)
    parser.add_argument("--looks", type=Path, help="keep the recorded looks here; reuse if present")
    parser.add_argument(
        "--bundled", type=Path, nargs="*", default=list(BUNDLED_SETS), help="bundled question sets"
    )
    args = parser.parse_args(argv)
    looks, bundled = _looks(args)
    chosen, grid = choose(looks)
    setting = _setting(chosen)
    gate, cut = choose_cut(looks, setting, bundled)
    fitted = cross_fit(looks, bundled)
    report = {
        "chosen": {
            "top": setting[0],
            "weight": setting[1],
            "margin": setting[2],
            "gate": gate,
            "cut": round(cut, 4),
        },
        "budget": BUDGET,
        "slack": SLACK,
        "seed": SPLIT_SEED,
        "cross_fitted": fitted,
        "all": {**evaluate(looks, *setting), **refusals(looks, setting, gate, cut)},
        "bundled": {
            b.name: {
                "answerable": b.answerable,
                "abstained_before": b.abstained,
                "refused": sum(
                    v is not None and v < cut
                    for v in (best_read(x, setting, gate) for x in b.looks)
                ),
            }
            for b in bundled
        },
        "grid_on_all": grid,
        "commit": checkout_commit(),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for h in fitted["halves"]:
        print("chosen", h["chosen"], "on one half:", h["tuned_on"], "other half:", h["held_out"])
    print("cross-fitted", {k: v for k, v in fitted.items() if k != "halves"})
    print("all", report["all"])
    print("bundled", report["bundled"])
    print("chosen", report["chosen"], "->", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
