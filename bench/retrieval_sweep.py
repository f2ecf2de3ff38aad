"""Choose chunk size, overlap and fusion by measurement (dev set + held-out set).

Usage: python bench/retrieval_sweep.py [--eval FILE ...] [--out bench/results/sweep.json]
Builds one index per chunking setting in a scratch folder (vectors are reused across builds
when the same text was already embedded) and scores each fusion variant on every question file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rag.embedding import load_embedder
from rag.evaluation import evaluate_retrieval, read_questions
from rag.index import IndexConfig, build_index, load_index
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS

VARIANTS = {
    "dense": {"fusion": "dense"},
    "dense+sentence": {"fusion": "rrf", "lexical_weight": 0.0, "sentence_weight": 1.0},
    "rrf(dense,bm25)": {"fusion": "rrf", "lexical_weight": 1.0, "sentence_weight": 0.0},
    "rrf(dense,sentence,bm25)": {"fusion": "rrf", "lexical_weight": 1.0, "sentence_weight": 1.0},
    "rrf(dense,sentence,0.5bm25)": {"fusion": "rrf", "lexical_weight": 0.5, "sentence_weight": 1.0},
    "linear(dense+sentence+0.05bm25)": {"fusion": "linear"},
    "linear(dense+sentence+0.1bm25)": {"fusion": "linear", "lexical_weight": 2.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--eval",
        nargs="+",
        type=Path,
        default=[Path("../shared/eval/dev.jsonl"), Path("bench/heldout.jsonl")],
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 150, 200, 300])
    parser.add_argument("--overlaps", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval_sweep.json"))
    args = parser.parse_args()
    embedder = load_embedder("e5")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            for overlap in args.overlaps:
                config = IndexConfig(BUNDLED_CORPUS, Path(scratch), size, overlap)
                build_index(config, embedder)
                index = load_index(Path(scratch))
                for name, params in VARIANTS.items():
                    retriever = Retriever(index, embedder, **params)  # type: ignore[arg-type]

                    def search(
                        q: str, k: int, r: Retriever = retriever
                    ) -> list[tuple[str, int, int]]:
                        return [(h.doc, h.start, h.end) for h in r.retrieve(q, k)]

                    result = {
                        "chunk_chars": size,
                        "overlap": overlap,
                        "variant": name,
                        "chunks": len(index.chunks),
                    }
                    for path in args.eval:
                        report = evaluate_retrieval(read_questions(path, index.documents), search)
                        result[path.stem] = report["all"]
                    rows.append(result)
                    print(json.dumps(result, ensure_ascii=False), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
