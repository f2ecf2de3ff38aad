"""Answer quality of the LLM modes with real local Qwen models: the 0.5B our tests use and the
1.5B for evaluation, side by side.

Usage: python bench/llm_eval.py [FILE.jsonl ...] [--model 0.5b 1.5b] [--mode llm auto]
                                [--limit N] [--out bench/results/llm_eval.json]
Files default to the dev set and bench/heldout.jsonl. For each model, llama.cpp's
OpenAI-compatible server (tests/helpers/qwen.py) starts on 127.0.0.1 and every question is
answered in each mode (set by set, mode by mode, the models side by side, so that a run
cut short still compares them on the same questions); the extractive answer is the reference.
Per model x mode x set: accuracy (as ``rag eval --answers``), the kept-sentence rate (reply
sentences the verifier kept / all reply sentences), fallbacks (answers that ended extractive
because the LLM failed or had no supported sentence), LLM answers, English questions answered
in English, and latency p50 / p95 of the whole answer. The 0.5B GGUF comes from
.ci/install-qwen.sh, the 1.5B from bench/fetch_qwen15b.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.answer import Answerer, Mode
from rag.citations import Answer
from rag.engine import Engine, load_engine
from rag.evaluation import Question, evaluate_answers, read_questions
from rag.llm import ChatClient, OpenAIChat
from rag.question import detect_language
from rag.settings import Settings
from rag.verify import is_abstention, split_reply
from tests.helpers.qwen import (
    QWEN15_MODEL_ID,
    QWEN_MODEL_ID,
    LlamaServer,
    find_qwen15_gguf,
    find_qwen_gguf,
)

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "bench" / "heldout.jsonl"]
MODELS = {
    "0.5b": (QWEN_MODEL_ID, lambda: find_qwen_gguf(ROOT / ".cache" / "models")),
    "1.5b": (QWEN15_MODEL_ID, lambda: find_qwen15_gguf(Path("/work/cache"))),
}
LLM_TIMEOUT = 180.0  # seconds per request: the 1.5B reads five passages at ~60 tokens/s


class Recording:
    """A ChatClient that keeps the last reply's text, to count the sentences the model wrote."""

    def __init__(self, inner: ChatClient) -> None:
        self.inner = inner
        self.model = inner.model
        self.last = ""

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        self.last = self.inner.complete(messages)
        return self.last

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        self.last = ""
        for delta in self.inner.stream(messages):
            self.last += delta
            yield delta


@dataclass
class Run:
    """One question's answer with what the model wrote."""

    answer: Answer
    reply: str | None  # None when the LLM was not asked (routed to extraction)


def measure(
    answerer: Answerer, recorder: Recording | None, questions: list[Question], mode: Mode
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The metrics of one model x mode x set, and one record per question."""
    runs: list[Run] = []

    def ask(question: str) -> Answer:
        if recorder is not None:
            recorder.last = ""
        answer = answerer.answer(question, mode)
        asked = answer.mode == "llm" or bool(
            answer.fallback_reason and "LLM" in answer.fallback_reason
        )
        runs.append(Run(answer, recorder.last if recorder is not None and asked else None))
        return answer

    table, records = evaluate_answers(questions, ask, answerer.engine.index.documents)
    kept = total = 0
    english = english_in_english = 0
    for q, run, record in zip(questions, runs, records, strict=True):
        a = run.answer
        written = [] if run.reply is None or is_abstention(run.reply) else split_reply(run.reply)
        n_kept = round((a.faithfulness or 0.0) * len(written)) if a.mode == "llm" else 0
        kept += n_kept
        total += len(written)
        if detect_language(q.question) == "en" and a.mode == "llm":
            english += 1
            english_in_english += detect_language(a.answer) == "en"
        record.update(
            reply=run.reply,
            reply_sentences=len(written),
            kept_sentences=n_kept,
            fallback_reason=a.fallback_reason,
            unsupported=a.unsupported,
            llm_seconds=round(a.timings.get("llm", 0.0), 3),
        )
    seconds = sorted(float(r["seconds"]) for r in records)  # type: ignore[arg-type]
    llm_answers = sum(1 for r in runs if r.answer.mode == "llm")
    summary: dict[str, object] = {
        "n": len(questions),
        "accuracy": table["all"].get("accuracy"),
        "sentence_accuracy": table["all"].get("sentence_accuracy"),
        "kept_sentence_rate": round(kept / total, 4) if total else None,
        "reply_sentences": total,
        "llm_asked": sum(1 for r in runs if r.reply is not None),
        "llm_answers": llm_answers,
        "fallbacks": sum(1 for r in runs if r.answer.fallback_reason),
        "english_llm_answers": english,
        "english_answered_in_english": english_in_english,
        "p50_s": round(statistics.median(seconds), 3) if seconds else None,
        "p95_s": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 3),
        "metrics": table,
    }
    return summary, records


def load() -> dict[str, float]:
    one, five, _ = os.getloadavg()
    return {"load1": round(one, 2), "load5": round(five, 2)}


def table_lines(cells: list[dict[str, object]]) -> list[str]:
    head = (
        "| model | mode | set | n | accuracy | kept sentences | fallbacks | LLM answers "
        "| English in English | p50 s |"
    )
    lines = [head, "|" + "---|" * 10]
    for c in cells:
        kept = c["kept_sentence_rate"]
        en = f"{c['english_answered_in_english']}/{c['english_llm_answers']}"
        lines.append(
            f"| {c['model']} | {c['mode']} | {c['set']} | {c['n']} | {c['accuracy']} "
            f"| {kept if kept is not None else '-'} ({c['reply_sentences']}) | {c['fallbacks']} "
            f"| {c['llm_answers']} | {en} | {c['p50_s']} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, default=FILES)
    parser.add_argument("--model", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--mode", nargs="+", choices=["llm", "auto"], default=["llm", "auto"])
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/llm_eval.json")
    args = parser.parse_args()
    engine: Engine = load_engine(Settings())
    sets = {}
    for path in args.files:
        questions = read_questions(path, engine.index.documents)
        sets[path.stem] = questions[: args.limit] if args.limit else questions
    cells: list[dict[str, object]] = []
    records: dict[str, list[dict[str, object]]] = {}
    report: dict[str, object] = {
        "cores": os.cpu_count(),
        "files": [str(p) for p in args.files],
        "limit": args.limit,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cells": cells,
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def run(model: str, mode: Mode, name: str, answerer: Answerer, rec: Recording | None) -> None:
        before = load()
        summary, rows = measure(answerer, rec, sets[name], mode)
        cell = {"model": model, "mode": mode, "set": name, **summary, "load": [before, load()]}
        cells.append(cell)
        records[f"{model}/{mode}/{name}"] = rows
        print(table_lines([cell])[-1], flush=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

    print("\n".join(table_lines([])), flush=True)
    for name in sets:
        run("-", "extractive", name, Answerer(engine), None)
    # Set by set, mode by mode, the models side by side (a server per cell: it starts in a few
    # seconds), so a run cut short still compares the models on the same questions.
    for name in sets:
        for mode in args.mode:
            for model in args.model:
                model_id, find = MODELS[model]
                log = args.out.with_name(f"llm_eval-{model}.llama.log")
                with LlamaServer(find(), log, model_id=model_id, n_threads=args.threads) as server:
                    chat = OpenAIChat(server.base_url, server.model, timeout=LLM_TIMEOUT)
                    recorder = Recording(chat)
                    run(model, mode, name, Answerer(engine, recorder), recorder)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print("\n" + "\n".join(table_lines(cells)))


if __name__ == "__main__":
    main()
