"""Show how the extractive abstention rules and threshold split answerable from unanswerable.

Usage: python bench/calibrate_abstention.py [FILE.jsonl ...]
For every question: the best evidence score, and which rule (if any) abstains. The score
threshold in rag/extractive.py (ABSTAIN_BELOW) was set just under the weakest answerable
question's best score; this prints the margin so a change of embedder can be re-calibrated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag.answer import Answerer
from rag.engine import load_engine
from rag.evaluation import read_questions
from rag.extractive import ABSTAIN_BELOW, select_evidence
from rag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        default=[Path("../shared/eval/dev.jsonl"), Path("bench/heldout.jsonl")],
    )
    args = parser.parse_args()
    answerer = Answerer(load_engine(Settings()))
    index = answerer.engine.index
    rows = []
    for path in args.files:
        for q in read_questions(path, index.documents):
            prepared = answerer.prepare(q.question)
            best = prepared.scored[0].score if prepared.scored else 0.0
            reason = select_evidence(prepared.info, index, prepared.scored).abstain_reason
            rows.append((best, q.answerable, q.id, reason or "-", q.question[:40]))
    rows.sort()
    print(f"threshold ABSTAIN_BELOW = {ABSTAIN_BELOW}")
    print(f"{'score':>7}  {'gold':<12}{'id':<5} abstains because / question")
    for best, answerable, qid, reason, question in rows:
        gold = "answerable" if answerable else "UNANSWERABLE"
        print(f"{best:7.3f}  {gold:<12}{qid:<5} {reason} / {question}")
    answerable = [r[0] for r in rows if r[1]]
    unanswerable = [r for r in rows if not r[1]]
    caught = sum(r[3] != "-" for r in unanswerable)
    false = sum(r[3] != "-" for r in rows if r[1])
    print(
        f"weakest answerable score {min(answerable):.3f}; "
        f"abstained on {caught}/{len(unanswerable)} unanswerable, "
        f"{false}/{len(answerable)} answerable"
    )


if __name__ == "__main__":
    main()
