"""Retrieval and answer metrics over question sets with gold evidence.

Two kinds of gold: rows like ``shared/eval/dev.jsonl`` give verbatim evidence quotes and a
written answer; SQuAD-layout sets (CMRC 2018, DRCD) give the exact answer spans. A retrieved or
cited span "holds" an evidence quote when it covers at least half of it, and a gold answer span
when it contains all of it. Short answers are scored as the official CMRC 2018 evaluation
script scores them, so figures compare with published ones.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.citations import MARKER, Answer, Citation
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
    # SQuAD-style gold: the exact answer spans in their articles (``quote`` is the answer text).
    answer_spans: list[Evidence] = field(default_factory=list)


Span = tuple[str, int, int]  # (doc, start, end)


def read_questions(path: Path, documents: Mapping[str, StoredDocument]) -> list[Question]:
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


def holds_gold(span: Span, q: Question) -> bool:
    """Does a cited span hold the gold answer? It must contain a whole gold answer span
    (SQuAD-style gold) or cover at least half of a gold evidence quote (evidence-quote gold)."""
    doc, start, end = span
    if q.answer_spans:
        return any(a.doc == doc and start <= a.start and a.end <= end for a in q.answer_spans)
    return any(covers(span, e) for e in q.evidence)


def sentence_correct(q: Question, answer: Answer) -> bool:
    """Sentence accuracy for one answerable question: some citation holds the gold answer.
    An answer that does not claim to answer scores 0, whatever it lists as sources."""
    spans = [(c.doc, c.start, c.end) for c in answer.citations]
    return answer.answerable and any(holds_gold(span, q) for span in spans)


# --- short answers, scored as the official CMRC 2018 evaluation script (v5) does ---------------

# The script's punctuation list; ASCII , . ? ! and others are not in it and stay as tokens.
# (Its "……" entry is two characters and never equals one, so it is left out here too.)
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CMRC_CHINESE = re.compile(r"[\u4e00-\u9fa5]")
# Stands in for nltk's word_tokenize, which the script runs on every stretch of non-Chinese
# text: words and numbers stay whole ("3.2tbps", "a16z", "1,000"), other symbols stand alone.
_CMRC_WORD = re.compile(r"\w+(?:[.,'’]\w+)*|[^\w\s]")


def cmrc_tokens(text: str, remove_punctuation: bool = True) -> list[str]:
    """Lower-cased tokens: each Chinese character and listed punctuation mark alone, English
    words and numbers whole; with ``remove_punctuation`` the listed marks are dropped."""
    tokens: list[str] = []
    pending = ""
    for char in text.lower().strip():
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if _CMRC_CHINESE.match(char) or char in CMRC_PUNCTUATION:
            tokens.extend(_CMRC_WORD.findall(pending))
            pending = ""
            tokens.append(char)
        else:
            pending += char
    tokens.extend(_CMRC_WORD.findall(pending))
    return tokens


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of tokens (the script's ``find_lcs``)."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(golds: Iterable[str], prediction: str | None) -> float:
    """Character F1, best over the gold answers. As in the script, overlap is the longest
    common *contiguous* run of tokens, not a bag of tokens; no prediction scores 0."""
    if prediction is None:
        return 0.0
    predicted = cmrc_tokens(prediction)
    best = 0.0
    for gold in golds:
        expected = cmrc_tokens(gold)
        common = _longest_common_run(expected, predicted)
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def cmrc_exact_match(golds: Iterable[str], prediction: str | None) -> float:
    """1.0 when the prediction equals a gold answer once lower-cased, stripped and rid of the
    script's punctuation marks (whitespace inside is kept, as there); no prediction scores 0."""
    if prediction is None:
        return 0.0

    def bare(text: str) -> str:
        return "".join(c for c in text.lower().strip() if c not in CMRC_PUNCTUATION)

    return float(any(bare(gold) == bare(prediction) for gold in golds))


_GLOSS = re.compile(r"\s*[(（][^)）]*[)）]")


def short_golds(q: Question) -> list[str]:
    """Gold short answers: the SQuAD answer texts, or the written ``answer`` without its
    parenthesised glosses and trailing 。. Written answers in English are left out: the
    articles are Chinese, so a verbatim span can never match them character for character."""
    if q.answer_spans:
        return list(dict.fromkeys(a.quote for a in q.answer_spans))
    gold = _GLOSS.sub("", q.answer).strip().rstrip("。").strip()
    if not gold or detect_language(gold) == "en":
        return []
    return [gold]


def short_answer_scores(q: Question, answer: Answer) -> dict[str, float]:
    """Exact match, character F1 and coverage of the short answer, and the F1 of the whole
    answer text; empty when there is no usable gold. Nothing counts from an abstaining answer."""
    golds = short_golds(q)
    if not golds:
        return {}
    text = answer.short_answer.text if answer.short_answer and answer.answerable else None
    return {
        "short_em": cmrc_exact_match(golds, text),
        "short_f1": cmrc_f1(golds, text),
        "short_coverage": float(text is not None),
        # The whole answer scored the same way: what a reader gets without a short answer.
        "answer_f1": cmrc_f1(golds, MARKER.sub("", answer.answer) if answer.answerable else None),
    }


def citation_valid(
    q: Question, citation: Citation, documents: Mapping[str, StoredDocument]
) -> bool:
    """The quote is the exact source slice and overlaps a gold answer span or evidence quote."""
    doc = documents.get(citation.doc)
    if doc is None or doc.text[citation.start : citation.end] != citation.quote:
        return False
    return any(
        e.doc == citation.doc and citation.start < e.end and e.start < citation.end
        for e in q.answer_spans or q.evidence
    )


def answer_scores(
    q: Question, answer: Answer, documents: Mapping[str, StoredDocument]
) -> dict[str, float]:
    """Per-question answer metrics; absent keys do not count toward that metric's mean.

    ``abstention`` is measured on unanswerable questions, everything else but ``accuracy``
    and ``seconds`` on answerable ones; "related" and "none" outcomes both abstain.
    """
    scores: dict[str, float] = {
        "accuracy": float(answer_correct(q, answer)),
        "seconds": answer.timings.get("total", 0.0),
    }
    if q.answerable:
        scores["false_abstention"] = float(not answer.answerable)
        scores["sentence_accuracy"] = float(sentence_correct(q, answer))
        scores.update(short_answer_scores(q, answer))
        if answer.citations:
            valid = [citation_valid(q, c, documents) for c in answer.citations]
            scores["citation_validity"] = sum(valid) / len(valid)
    else:
        scores["abstention"] = float(not answer.answerable)
    return scores


OUTCOMES = ("answered", "related", "none")


def outcome_of(answer: Answer) -> str:
    """The answer's outcome; an abstaining answer still marked "answered" (the default, which
    answer layers without three outcomes leave alone) counts as "none"."""
    if not answer.answerable and answer.outcome == "answered":
        return "none"
    return answer.outcome


def mean_present(
    rows: Iterable[tuple[Sequence[str], dict[str, float]]],
    outcomes: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Average per group ("all" plus each row's groups); a metric averages where measured.

    With ``outcomes`` (one per row) each group also counts its answers by outcome, as
    ``n_answered``, ``n_related`` and ``n_none`` next to the question count ``n``.
    """
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for i, (names, scores) in enumerate(rows):
        for name in ("all", *names):
            groups[name].append(scores)
            if outcomes is not None:
                counts[name][outcomes[i]] += 1
    report: dict[str, dict[str, float]] = {}
    for name, items in groups.items():
        keys = sorted({k for item in items for k in item})
        report[name] = {}
        for k in keys:
            values = [i[k] for i in items if k in i]
            report[name][k] = round(sum(values) / len(values), 4)
        report[name]["n"] = len(items)
        if outcomes is not None:
            for outcome in OUTCOMES:
                report[name][f"n_{outcome}"] = counts[name][outcome]
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


def answer_record(q: Question, answer: Answer, scores: dict[str, float]) -> dict[str, object]:
    """One question's answer and scores, for reading the failures one by one."""
    short = answer.short_answer
    return {
        "id": q.id,
        "type": q.type,
        "question": q.question,
        "answer": answer.answer,
        "outcome": outcome_of(answer),
        "confidence": answer.confidence,
        "short_answer": short.text if short else None,
        "short_score": round(short.score, 4) if short else None,
        "gold": short_golds(q) or q.answer,
        "route": answer.route,
        "mode": answer.mode,
        **scores,
    }


def evaluate_answers(
    questions: Sequence[Question],
    ask: Callable[[str], Answer],
    documents: Mapping[str, StoredDocument],
) -> tuple[dict[str, dict[str, float]], list[dict[str, object]]]:
    """Answer metrics overall and per type, plus one record per question for inspection."""
    rows: list[tuple[list[str], dict[str, float]]] = []
    outcomes: list[str] = []
    records: list[dict[str, object]] = []
    for q in questions:
        answer = ask(q.question)
        scores = answer_scores(q, answer, documents)
        groups = [q.type] + ([f"route:{answer.route}"] if answer.route else [])
        if answer.fallback_reason:
            groups.append("fell-back")
        rows.append((groups, scores))
        outcomes.append(outcome_of(answer))
        records.append(answer_record(q, answer, scores))
    return mean_present(rows, outcomes), records
