"""Answer metrics per mode with a real local Qwen (the 0.5B GGUF the tests use).

Usage: python bench/llm_eval.py [FILE.jsonl ...] [--out bench/results/answers.json]
Starts llama.cpp's OpenAI-compatible server on 127.0.0.1, then runs the same evaluation as
``rag eval --answers`` for the extractive, llm and auto modes, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.answer import Answerer
from rag.engine import load_engine
from rag.evaluation import evaluate_answers, read_questions
from rag.llm import OpenAIChat
from rag.settings import Settings
from tests.helpers.qwen import LlamaServer, find_qwen_gguf

MODES = ("extractive", "llm", "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, default=[Path("../shared/eval/dev.jsonl")])
    parser.add_argument("--out", type=Path, default=Path("bench/results/answers.json"))
    parser.add_argument("--models", type=Path, default=Path(".cache/models"))
    args = parser.parse_args()
    engine = load_engine(Settings())
    report: dict[str, object] = {}
    log = args.out.with_suffix(".llama.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with LlamaServer(find_qwen_gguf(args.models), log) as server:
        llm = OpenAIChat(server.base_url, server.model, timeout=60)
        answerer = Answerer(engine, llm)
        for path in args.files:
            questions = read_questions(path, engine.index.documents)
            for mode in MODES:
                table, records = evaluate_answers(
                    questions, partial(answerer.answer, mode=mode), engine.index.documents
                )
                report[f"{path.stem}[{mode}]"] = {"metrics": table, "records": records}
                print(
                    f"{path.stem} {mode}: {json.dumps(table['all'], ensure_ascii=False)}",
                    flush=True,
                )
                for name, row in table.items():
                    if name.startswith("route:") or name == "fell-back":
                        print(f"    {name}: {json.dumps(row)}", flush=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
