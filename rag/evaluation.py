"""Retrieval metrics over a JSONL question set with verbatim evidence quotes.

A retrieved passage "hits" an evidence quote when it is in the same document and covers at
least half of the quote's characters, the quote being located by its offsets in the article.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.citations import Answer, Citation
from rag.errors import InvalidInputError
from rag.index import StoredDocument
from rag.question import detect_language
from rag.tokens import tokenize


@dataclass(frozen=True)
class Evidence:
    doc: str
    quote: str
    start: int
    end: int


@dataclass
class Question:
    id: str
    question: str
    type: str
    answerable: bool
    answer: str = ""
    evidence: list[Evidence] = field(default_factory=list)


Span = tuple[str, int, int]  # (doc, start, end)


def read_questions(path: Path, documents: dict[str, StoredDocument]) -> list[Question]:
    """Parse the eval file and locate every evidence quote in its article."""
    questions: list[Question] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            evidence = []
            for ev in row.get("evidence", []):
                text = documents[ev["doc"]].text if ev["doc"] in documents else None
                start = text.find(ev["quote"]) if text is not None else -1
                if start < 0:
                    raise InvalidInputError(
                        f"{path}:{number}: evidence quote not found in {ev['doc']}: {ev['quote']!r}"
                    )
                evidence.append(Evidence(ev["doc"], ev["quote"], start, start + len(ev["quote"])))
            questions.append(
                Question(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    type=str(row.get("type", "all")),
                    answerable=bool(row.get("answerable", bool(evidence))),
                    answer=str(row.get("answer", "")),
                    evidence=evidence,
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"{path}:{number}: not a question object ({exc})") from exc
    return questions


def covers(span: Span, ev: Evidence) -> bool:
    """True when ``span`` holds at least half of the evidence quote."""
    doc, start, end = span
    if doc != ev.doc:
        return False
    return 2 * max(0, min(end, ev.end) - max(start, ev.start)) >= (ev.end - ev.start)


def retrieval_scores(spans: Sequence[Span], evidence: Sequence[Evidence]) -> dict[str, float]:
    """hit@1, hit@5, MRR@10 and all-evidence@5 for one question's ranked spans."""
    first = next((i for i, s in enumerate(spans[:10]) if any(covers(s, e) for e in evidence)), None)
    top5 = spans[:5]
    return {
        "hit@1": float(first == 0),
        "hit@5": float(first is not None and first < 5),
        "mrr@10": 0.0 if first is None else 1.0 / (first + 1),
        "all_evidence@5": float(all(any(covers(s, e) for s in top5) for e in evidence)),
    }


def mean_by_type(rows: Iterable[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Average metric dicts overall ("all") and per question type, with counts as ``n``."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for qtype, scores in rows:
        groups["all"].append(scores)
        groups[qtype].append(scores)
    report: dict[str, dict[str, float]] = {}
    for name, items in groups.items():
        keys = sorted({k for item in items for k in item})
        report[name] = {k: round(sum(i.get(k, 0.0) for i in items) / len(items), 4) for k in keys}
        report[name]["n"] = len(items)
    return dict(sorted(report.items(), key=lambda kv: (kv[0] != "all", kv[0])))


def evaluate_retrieval(
    questions: Sequence[Question], search: Callable[[str, int], Sequence[Span]], k: int = 10
) -> dict[str, dict[str, float]]:
    """Retrieval metrics overall and per type; questions without evidence are left out."""
    rows = []
    for q in questions:
        if q.evidence:
            rows.append((q.type, retrieval_scores(search(q.question, max(k, 10)), q.evidence)))
    return mean_by_type(rows)


_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_FULLWIDTH = str.maketrans("０１２３４５６７８９．％", "0123456789.%")


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text.translate(_FULLWIDTH)).lower()


def answer_correct(q: Question, answer: Answer) -> bool:
    """Does the answer state the gold facts? (English questions: judged by cited evidence.)

    Gold numbers must all appear, except those the question itself gives and glosses in
    parentheses; at least half of the gold answer's content words must appear. For English
    questions the quoted Chinese evidence is judged: the citations must cover every gold
    evidence quote.
    """
    if not q.answerable:
        return not answer.answerable
    if not answer.answerable:
        return False
    spans = [(c.doc, c.start, c.end) for c in answer.citations]
    if q.type == "english" or detect_language(q.question) == "en":
        return all(any(covers(s, e) for s in spans) for e in q.evidence)
    text = _normalise(answer.answer)
    gold = _normalise(re.sub(r"[(（][^)）]*[)）]", "", q.answer))
    asked = set(_DIGITS.findall(_normalise(q.question)))
    if any(n not in text for n in _DIGITS.findall(gold) if n not in asked):
        return False
    terms = [t for t in dict.fromkeys(tokenize(q.answer)) if not t.isdigit()]
    if not terms:
        return True
    return sum(t in text for t in terms) / len(terms) >= 0.5


def citation_valid(q: Question, citation: Citation, documents: dict[str, StoredDocument]) -> bool:
    """The quote is the exact source slice and overlaps a gold evidence quote."""
    doc = documents.get(citation.doc)
    if doc is None or doc.text[citation.start : citation.end] != citation.quote:
        return False
    return any(
        e.doc == citation.doc and citation.start < e.end and e.start < citation.end
        for e in q.evidence
    )


def answer_scores(
    q: Question, answer: Answer, documents: dict[str, StoredDocument]
) -> dict[str, float]:
    """Per-question answer metrics; absent keys do not count toward that metric's mean."""
    scores: dict[str, float] = {
        "accuracy": float(answer_correct(q, answer)),
        "seconds": answer.timings.get("total", 0.0),
    }
    if q.answerable:
        scores["false_abstention"] = float(not answer.answerable)
        if answer.citations:
            valid = [citation_valid(q, c, documents) for c in answer.citations]
            scores["citation_validity"] = sum(valid) / len(valid)
    else:
        scores["abstention"] = float(not answer.answerable)
    return scores


def mean_present(
    rows: Iterable[tuple[Sequence[str], dict[str, float]]],
) -> dict[str, dict[str, float]]:
    """Average per group ("all" plus each row's groups); a metric averages where measured."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for names, scores in rows:
        groups["all"].append(scores)
        for name in names:
            groups[name].append(scores)
    report: dict[str, dict[str, float]] = {}
    for name, items in groups.items():
        keys = sorted({k for item in items for k in item})
        report[name] = {}
        for k in keys:
            values = [i[k] for i in items if k in i]
            report[name][k] = round(sum(values) / len(values), 4)
        report[name]["n"] = len(items)
    return dict(
        sorted(
            report.items(),
            key=lambda kv: (
                kv[0] != "all",
                kv[0].startswith("route:") or kv[0] == "fell-back",
                kv[0],
            ),
        )
    )


def evaluate_answers(
    questions: Sequence[Question],
    ask: Callable[[str], Answer],
    documents: dict[str, StoredDocument],
) -> tuple[dict[str, dict[str, float]], list[dict[str, object]]]:
    """Answer metrics overall and per type, plus one record per question for inspection."""
    rows: list[tuple[list[str], dict[str, float]]] = []
    records: list[dict[str, object]] = []
    for q in questions:
        answer = ask(q.question)
        scores = answer_scores(q, answer, documents)
        groups = [q.type] + ([f"route:{answer.route}"] if answer.route else [])
        if answer.fallback_reason:
            groups.append("fell-back")
        rows.append((groups, scores))
        records.append(
            {
                "id": q.id,
                "type": q.type,
                "answer": answer.answer,
                "route": answer.route,
                "mode": answer.mode,
                **scores,
            }
        )
    return mean_present(rows), records
