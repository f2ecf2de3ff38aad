"""Extractive answer latency of the working tree against an earlier commit, side by side.

Usage: python bench/answer_latency.py [--against 7a7b9a3] [--rounds 3] [--limit N]

The earlier commit is checked out in a temporary ``git worktree``. Each side runs in its own
subprocess with its own code on ``PYTHONPATH`` and its own index of the bundled articles (built
by that side, so an index format change cannot favour either). Both load, build and warm up
(every question answered once, untimed), then time ``Answerer.answer(q, mode="extractive")``
on the same questions (dev + held-out) in rounds, alternating sides question by question (which
side goes first alternates too), so a swing in machine load hits both alike. The query-vector
cache is emptied before each question, so every answer pays for its query embedding as a new
question does. Reports medians, p95 and the ratio new / old (issue 9's target: <= 1.5x) to
bench/results/answer_latency.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl"]
OUT = REPO / "bench" / "results" / "answer_latency.json"
DEFAULT_AGAINST = "7a7b9a3"  # the commit before issue 9's answer layer
TARGET_RATIO = 1.5
REPLY = "@@latency "  # worker replies carry this prefix; anything else on stdout is ignored


# --------------------------------------------------------------------------- worker side


def _reply(payload: dict[str, Any]) -> None:
    print(REPLY + json.dumps(payload), flush=True)


def worker(index_dir: Path) -> None:
    """Runs in a subprocess, importing ``rag`` from whichever tree is on ``PYTHONPATH``.

    Only API present at both commits is used: ``Settings``, ``load_engine``, ``Answerer``.
    """
    import rag
    from rag.answer import Answerer
    from rag.engine import load_engine
    from rag.settings import Settings

    questions: list[str] = json.loads(sys.stdin.readline())["questions"]
    t0 = time.perf_counter()
    engine = load_engine(Settings(index_dir=index_dir))
    answerer = Answerer(engine)
    load_seconds = time.perf_counter() - t0
    cache = getattr(engine.retriever, "_cache", None)

    def timed(question: str) -> float:
        if cache is not None:
            cache.clear()
        start = time.perf_counter()
        answerer.answer(question, mode="extractive")
        return time.perf_counter() - start

    for question in questions:  # warm-up: lazy loads, first-call costs
        timed(question)
    _reply(
        {
            "ready": True,
            "rag": str(Path(rag.__file__).resolve().parent),
            "load_seconds": round(load_seconds, 2),
            "query_cache_cleared": cache is not None,
        }
    )
    for line in sys.stdin:  # {"question": i} per timing, until the parent closes the pipe
        _reply({"seconds": timed(questions[json.loads(line)["question"]])})


# --------------------------------------------------------------------------- parent side


class Side:
    """One version of the code in its own long-lived worker process."""

    def __init__(self, name: str, tree: Path, index_dir: Path, log: Path) -> None:
        self.name, self.tree, self.log = name, tree, log
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self._stderr = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(index_dir)],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.seconds: list[list[float]] = []  # per round, per question (index = question)
        self.info: dict[str, Any] = {}

    def _send(self, payload: dict[str, Any]) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(payload) + "\n")
        stdin.flush()

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(REPLY):
                reply: dict[str, Any] = json.loads(line[len(REPLY) :])
                return reply
        self.process.wait()
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"the {self.name} side ({self.tree}) failed:\n{tail}")

    def start(self, questions: list[str]) -> None:
        """Send the questions; returns once the side has loaded (or built) and warmed up."""
        self._send({"questions": questions})
        self.info = self._receive()
        if Path(self.info["rag"]) != (self.tree / "rag").resolve():
            raise RuntimeError(f"the {self.name} side imported rag from {self.info['rag']}")

    def answer(self, question: int) -> None:
        """Time question number ``question`` once more, in the current round."""
        self._send({"question": question})
        self.seconds[-1].append(float(self._receive()["seconds"]))

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):  # end of input ends the worker's loop
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._stderr.close()


def read_questions(paths: Sequence[Path], limit: int | None) -> list[str]:
    """Question texts of the JSONL sets (answerable or not: both paths are timed)."""
    questions = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(str(json.loads(line)["question"]))
    return questions[:limit] if limit else questions


def quantile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summarise(side: Side) -> dict[str, Any]:
    flat = [s for round_ in side.seconds for s in round_]
    return {
        "p50_ms": round(1000 * statistics.median(flat), 2),
        "p95_ms": round(1000 * quantile(flat, 0.95), 2),
        "mean_ms": round(1000 * statistics.fmean(flat), 2),
        "round_p50_ms": [round(1000 * statistics.median(r), 2) for r in side.seconds],
        "answers_timed": len(flat),
        **side.info,
    }


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def measure(
    against: str, rounds: int, questions: list[str], index_root: Path, new_tree: Path = REPO
) -> dict[str, Any]:
    """Check ``against`` out, run both sides in alternating rounds, return the report."""
    old_commit = git("rev-parse", "--verify", f"{against}^{{commit}}")
    scratch = Path(tempfile.mkdtemp(prefix="answer-latency-"))
    old_tree = scratch / "old"
    git("worktree", "add", "--detach", str(old_tree), old_commit)
    sides: list[Side] = []
    load_before = os.getloadavg()
    try:
        for name, tree in (("old", old_tree), ("new", new_tree)):
            side = Side(name, tree, index_root / f"index-{name}", scratch / f"{name}.log")
            sides.append(side)
            print(f"{name}: loading or building its index and warming up ...", file=sys.stderr)
            side.start(questions)  # one at a time: two builds at once would share the cores
        old, new = sides
        for r in range(rounds):
            old.seconds.append([])
            new.seconds.append([])
            for i in range(len(questions)):
                for side in (old, new) if (r + i) % 2 == 0 else (new, old):
                    side.answer(i)
            print(
                f"round {r + 1}/{rounds}: old p50 {1000 * statistics.median(old.seconds[-1]):.1f}"
                f" ms, new p50 {1000 * statistics.median(new.seconds[-1]):.1f} ms",
                file=sys.stderr,
            )
    finally:
        for side in sides:
            side.close()
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(old_tree)], cwd=REPO, check=False
        )
        shutil.rmtree(scratch, ignore_errors=True)
    per_question = [
        statistics.median(n[i] for n in new.seconds) / statistics.median(o[i] for o in old.seconds)
        for i in range(len(questions))
    ]
    report_old, report_new = summarise(old), summarise(new)
    ratio = report_new["p50_ms"] / report_old["p50_ms"]
    return {
        "old": {"commit": old_commit, **report_old},
        "new": {
            "tree": str(new_tree),
            "commit": git("rev-parse", "HEAD", cwd=new_tree),
            "rag_dirty": bool(git("status", "--short", "rag", cwd=new_tree)),
            **report_new,
        },
        "ratio_p50": round(ratio, 3),
        "paired_ratio_median": round(statistics.median(per_question), 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "questions": len(questions),
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="git commit to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument(
        "--questions", type=Path, nargs="+", default=QUESTION_FILES, help="JSONL question sets"
    )
    parser.add_argument(
        "--index-root", type=Path, help="keep each side's index here between runs (default: temp)"
    )
    parser.add_argument(
        "--new-tree", type=Path, default=REPO, help="checkout measured as new (default: this one)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    questions = read_questions(args.questions, args.limit)
    with tempfile.TemporaryDirectory(prefix="answer-latency-index-") as temp:
        index_root = args.index_root or Path(temp)
        report = measure(args.against, args.rounds, questions, index_root, args.new_tree.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    old, new = report["old"], report["new"]
    print("| side | commit | p50 ms | p95 ms | answers |")
    print("|---|---|---|---|---|")
    for name, side in (("old", old), ("new", new)):
        commit = side["commit"][:7] + (" + working tree" if side.get("rag_dirty") else "")
        print(
            f"| {name} | {commit} | {side['p50_ms']:.1f} | {side['p95_ms']:.1f} "
            f"| {side['answers_timed']} |"
        )
    verdict = "meets" if report["meets_target"] else "MISSES"
    print(
        f"new / old p50: {report['ratio_p50']:.2f}x (paired per question "
        f"{report['paired_ratio_median']:.2f}x); {verdict} the <= {TARGET_RATIO}x target"
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
