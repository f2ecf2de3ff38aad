"""Train the evidence ranker and the answerability model on the shared QA sets.

    python -m rag.answering.train_evidence [--paragraphs 900] [--work /tmp/answering] [--out DIR]

Data: the training side of the fixed split in ``qa_sets`` (never ../shared/eval or
bench/heldout.jsonl). A sample of its paragraphs becomes a corpus, indexed with the real
embedder; 30% of them are then left out so their questions meet only related paragraphs
(realistic "not found" cases), and questions of paragraphs outside the sample add off-topic
ones. Every question goes through the real retriever and the same feature code the service
runs. The ranker is a LightGBM lambdarank over each question's candidate sentences; the
answerability model a LightGBM binary classifier over out-of-fold ranker scores (so it learns
from scores like those it meets in service). Its threshold is chosen on the validation side
for false abstention <= 5%, and the validation figures go into ``models/answer_layer.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import Answerer
from rag.answering.features import (
    ANSWERABILITY_FEATURES,
    EVIDENCE_FEATURES,
    Candidate,
    answerability_row,
    evidence_candidates,
    with_damped_lexical_match,
    without_lexical_match,
)
from rag.answering.near_miss import near_misses
from rag.answering.qa_sets import QACorpus, QAItem, QASet, lay_out, load_sets, sample, split
from rag.answering.rerank import RERANK_FEATURES, reordered, rerank_rows
from rag.answering.selector import (
    ANSWERABILITY_MODEL,
    CARD,
    DENSE_ANSWERABILITY_MODEL,
    EVIDENCE_MODEL,
    MODELS_DIR,
    RELEVANCE_MODEL,
    RERANK_MODEL,
    THRESHOLD_GROUPS,
    blended_order,
    definition_first,
    has_words,
    kind_first,
    span_probability,
    threshold_group,
    unknown_names,
)
from rag.engine import load_engine
from rag.evaluation import read_questions
from rag.index import SearchIndex
from rag.question import QuestionInfo
from rag.retrieval import Hit
from rag.settings import Settings

SEED = 7
FOLDS = 5
TARGET_FALSE_ABSTENTION = 0.05
ON_TOPIC = ("kept", "removed", "nearmiss")  # about what the corpus covers, answered or not
NEAR_MISS_SHARE = 0.3  # of answerable questions, turned into near misses (near_miss.py)
LOW_OVERLAP = 0.6  # about a third of the QA questions share less of their gold sentence
# Shared by every model: fixed seeds and deterministic, so a rebuild gives the same files.
COMMON_PARAMS = {
    "learning_rate": 0.05,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "seed": SEED,
    "deterministic": True,
    "num_threads": 2,
    "verbose": -1,
}
RANKER_PARAMS = {
    **COMMON_PARAMS,
    "objective": "lambdarank",
    "metric": "ndcg",
    "ndcg_eval_at": [1],
    "num_leaves": 15,
    "min_data_in_leaf": 20,
}
RANKER_ROUNDS = 300
# The second look at the ranker's top few with the span model (rerank.py): few, shallow trees
# over seven features, so it adds what the span model knows without relearning the ranker.
RERANK_PARAMS = {**RANKER_PARAMS, "num_leaves": 3, "min_data_in_leaf": 50}
RERANK_ROUNDS = 200
JUDGE_PARAMS = {**COMMON_PARAMS, "objective": "binary", "num_leaves": 7, "min_data_in_leaf": 30}
JUDGE_ROUNDS = 300
# Content-free and nonsense input the service must never answer (negatives for the judge).
NONSENSE = (
    "？？？",
    "...",
    "😀😀",
    "\u200b\u200b",
    "asdf qwerty zxcv",
    "啊啊啊啊",
    "qwe rty",
    "！！",
)

EVERYDAY_FILE = Path(__file__).parent / "data" / "everyday.txt"


def everyday_questions(side: str) -> list[str]:
    """Everyday questions (weather, food, chat) of one side, "train" or "validation": off-topic
    negatives unlike Wikipedia questions, which always name something specific."""
    lines = [
        line.strip()
        for line in EVERYDAY_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return lines[0::2] if side == "train" else lines[1::2]


# Questions on the bundled articles: validation only, never trained on.
REPO = Path(__file__).resolve().parents[2]
BUNDLED_SETS = (REPO.parent / "shared" / "eval" / "dev.jsonl", REPO / "bench" / "heldout.jsonl")

log = logging.getLogger("train_evidence")


@dataclass
class Example:
    """One question as the service sees it, with its labels."""

    # "kept" (answer in the corpus), "removed", "nearmiss" (a kept question with a year, number
    # or name changed: see near_miss.py), "offtopic", "everyday" (weather, food, chat:
    # data/everyday.txt), "nonsense"
    kind: str
    info: QuestionInfo
    candidates: list[Candidate]
    labels: list[int]  # per candidate: does the sentence hold a gold answer?
    hits: list[Hit]
    unknown: int
    # Share of the question's characters found in its gold sentence (1 when it has none): low
    # for a question that paraphrases its source, as the bundled news questions do.
    overlap: float = 1.0


_CHARS = re.compile(r"[\u4e00-\u9fff0-9A-Za-z]")
_ENDS = "。！？!?"


def gold_overlap(qa: QASet, item: QAItem) -> float:
    """Share of the question's characters that occur in the sentence holding its answer."""
    chars = _CHARS.findall(item.question)
    if not item.answers or not chars:
        return 1.0
    text = qa.paragraphs[item.paragraph].text
    start = item.answers[0][1]
    begin = max(text.rfind(p, 0, start) for p in _ENDS) + 1
    ends = [i for i in (text.find(p, start) for p in _ENDS) if i >= 0]
    sentence = set(text[begin : min(ends) + 1 if ends else len(text)])
    return sum(c in sentence for c in chars) / len(chars)


def _holds(cand: Candidate, gold: list[tuple[str, int, int]]) -> bool:
    s = cand.sentence
    for doc, start, end in gold:
        if doc == s.doc and 2 * (min(end, s.end) - max(start, s.start)) >= (end - start):
            return True
    return False


def collect(
    answerer: Answerer,
    corpus: QACorpus,
    extra: list[str],
    limit: int | None,
    seed: int,
    near_miss_share: float = 0.0,
    checkpoint: Callable[[], None] | None = None,
    everyday: Sequence[str] = (),
) -> list[Example]:
    """Run every question (and the ``extra`` off-topic ones, and near misses made from a
    ``near_miss_share`` of the answerable ones) through retrieval and features."""
    index = answerer.engine.index
    items = list(corpus.qa.items)
    random.Random(seed).shuffle(items)
    if limit:
        items = items[:limit]
    jobs: list[tuple[str, str, list[tuple[str, int, int]], float]] = [
        (
            "kept" if corpus.answerable(i) else "removed",
            i.question,
            corpus.gold_spans(i),
            gold_overlap(corpus.qa, i),
        )
        for i in items
    ]
    if near_miss_share > 0:
        kept = [i for i in items if corpus.answerable(i)]
        corpus_text = "\n".join(
            p.text for pid, p in corpus.qa.paragraphs.items() if pid not in corpus.removed
        )
        pairs = [(i.question, corpus.qa.paragraphs[i.paragraph].text) for i in kept]
        misses = near_misses(pairs, corpus_text, near_miss_share, seed)
        jobs += [("nearmiss", m.question, [], 1.0) for m in misses]
    jobs += [("offtopic", q, [], 1.0) for q in extra]
    jobs += [("everyday", q, [], 1.0) for q in everyday]
    jobs += [("nonsense", q, [], 1.0) for q in NONSENSE]
    jobs = [job for job in jobs if job[1].strip()]  # a few DRCD questions are blank
    examples = []
    started = time.perf_counter()
    for n, (kind, question, gold, overlap) in enumerate(jobs, 1):
        prepared = answerer.prepare(question)
        hits = prepared.pool
        cands = evidence_candidates(index, prepared.info, prepared.scored, hits)
        if not has_words(question):
            cands = []
        labels = [int(kind == "kept" and _holds(c, gold)) for c in cands]
        unknown = len(unknown_names(prepared.info, index))
        examples.append(Example(kind, prepared.info, cands, labels, hits, unknown, overlap))
        if n % 200 == 0 or n == len(jobs):
            rate = n / (time.perf_counter() - started)
            print(f"  features {n}/{len(jobs)} ({rate:.1f} questions/s)", file=sys.stderr)
            if checkpoint and n % 1000 == 0:
                checkpoint()
    return examples


@dataclass(frozen=True)
class Variant:
    """One training configuration compared on validation."""

    name: str
    drop: frozenset[str] = frozenset()  # evidence features the models may not use
    english_share: float = 0.0  # share of training questions copied without lexical match
    judge_drop: frozenset[str] = frozenset()  # answerability features the judges may not use
    blend: float = 0.0  # weight of the hand-weighted evidence score in the candidate order
    # Answerability training weight of on-topic questions that overlap their gold sentence
    # less than ``paraphrase_below`` (1 = unweighted): importance weighting toward paraphrase.
    paraphrase_weight: float = 1.0
    paraphrase_below: float = LOW_OVERLAP
    # Weight of a second judge on the e5 scores alone (DENSE_JUDGE) in the answerability
    # probability, mixed with the first: 0 = one judge.
    dense_mix: float = 0.0
    # Train the judges on the near-miss questions too (they are always scored on validation).
    near_miss: bool = False
    # Share of Chinese training questions also seen with damped shared-word features (damp()).
    damp_share: float = 0.0
    # Candidates the span-model reranker reorders (rerank.py): 0 = none.
    rerank_top: int = 0


VARIANTS = {
    "all": Variant("all"),
    "all+en": Variant("all+en", english_share=0.25),
    "robust+en": Variant(
        "robust+en",
        drop=frozenset({"char_cover", "longest_common", "new_chars", "position"}),
        english_share=0.25,
    ),
}
# Surface features a near-copy question shares with its sentence: they win on reading-
# comprehension data and fail on paraphrased questions, so some variants may not use them.
COPY_FEATURES = frozenset({"char_cover", "longest_common", "new_chars", "position"})
JUDGE_LEXICAL = frozenset(
    {
        "top_score",
        "second_score",
        "score_gap",
        "top_overlap",
        "top_overlap_window",
        "top_char_cover",
        "top_longest_common",
        "top_new_chars",
    }
)
VARIANTS["robust+en+typed"] = Variant(
    "robust+en+typed", drop=COPY_FEATURES, english_share=0.25, judge_drop=JUDGE_LEXICAL
)
VARIANTS["robust+en50+typed"] = Variant(
    "robust+en50+typed", drop=COPY_FEATURES, english_share=0.5, judge_drop=JUDGE_LEXICAL
)
VARIANTS["robust+en+blend"] = Variant(
    "robust+en+blend", drop=COPY_FEATURES, english_share=0.25, blend=1.0
)
VARIANTS["all+blend"] = Variant("all+blend", blend=1.0)
# Compared for paraphrase robustness, not shipped (figures in models/README.md): the judge on
# the e5 scores alone (bundled AUC 0.48 -> 0.59, QA "not found" up, QA accuracy down), and
# low-overlap training questions weighted up (no gain).
DENSE_JUDGE = frozenset({"top_dense", "max_dense", "dense_margin", "top_hit_score"})
VARIANTS["robust+en+blend+dense"] = Variant(
    "robust+en+blend+dense",
    drop=COPY_FEATURES,
    english_share=0.25,
    blend=1.0,
    judge_drop=frozenset(ANSWERABILITY_FEATURES) - DENSE_JUDGE,
)
VARIANTS["robust+en+blend+paraphrase"] = Variant(
    "robust+en+blend+paraphrase",
    drop=COPY_FEATURES,
    english_share=0.25,
    blend=1.0,
    paraphrase_weight=6.0,
)
VARIANTS["robust+en+blend+mix"] = Variant(
    "robust+en+blend+mix", drop=COPY_FEATURES, english_share=0.25, blend=1.0, dense_mix=0.7
)
VARIANTS["robust+en+blend+near"] = Variant(
    "robust+en+blend+near", drop=COPY_FEATURES, english_share=0.25, blend=1.0, near_miss=True
)
VARIANTS["robust+en+blend+damp"] = Variant(
    "robust+en+blend+damp", drop=COPY_FEATURES, english_share=0.25, blend=1.0, damp_share=0.3
)
VARIANTS["robust+en+blend+rerank"] = Variant(
    "robust+en+blend+rerank", drop=COPY_FEATURES, english_share=0.25, blend=1.0, rerank_top=3
)
DEFAULT_VARIANTS = ("robust+en+blend",)


def _as_english(ex: Example) -> Example:
    info = replace(ex.info, language="en")
    cands = [without_lexical_match(c) for c in ex.candidates]
    return Example(ex.kind, info, cands, ex.labels, ex.hits, 0, ex.overlap)


def damp(examples: list[Example], share: float, seed: int) -> list[Example]:
    """The examples plus copies of a random ``share`` of the Chinese ones with their shared-word
    features scaled down by a random factor (0.2-0.8), labels kept: the judges then meet
    answerable questions that share few words with their sentence, as paraphrased news
    questions do, and unanswerable ones that share few words too."""
    if share <= 0:
        return examples
    rng = random.Random(seed + 2)
    extra = []
    for ex in examples:
        if ex.info.language != "zh" or not ex.candidates or rng.random() >= share:
            continue
        factor = rng.uniform(0.2, 0.8)
        cands = [with_damped_lexical_match(c, factor) for c in ex.candidates]
        extra.append(Example(ex.kind, ex.info, cands, ex.labels, ex.hits, ex.unknown, ex.overlap))
    return examples + extra


def augment(examples: list[Example], share: float, seed: int) -> list[Example]:
    """The examples plus copies of a random ``share`` of them seen as if asked in English."""
    if share <= 0:
        return examples
    rng = random.Random(seed)
    extra = [_as_english(ex) for ex in examples if ex.candidates and rng.random() < share]
    return examples + extra


def _matrix(cands: list[Candidate], drop: frozenset[str]) -> np.ndarray:
    x = np.array([c.features for c in cands], dtype=np.float64)
    for name in drop:
        x[:, EVIDENCE_FEATURES.index(name)] = 0.0  # constant: the trees cannot split on it
    return x


def train_ranker(examples: list[Example], drop: frozenset[str] = frozenset()) -> Any:
    import lightgbm

    groups = [
        ex for ex in examples if ex.kind == "kept" and any(ex.labels) and len(ex.candidates) > 1
    ]
    x = np.vstack([_matrix(ex.candidates, drop) for ex in groups])
    y = np.concatenate([ex.labels for ex in groups])
    data = lightgbm.Dataset(
        x, y, group=[len(ex.candidates) for ex in groups], feature_name=list(EVIDENCE_FEATURES)
    )
    return lightgbm.train(RANKER_PARAMS, data, num_boost_round=RANKER_ROUNDS)


def _rank(model: Any, ex: Example, blend: float = 0.0) -> list[tuple[int, float]]:
    """Candidate indices best first with their ranker scores, ordered as the service does."""
    if not ex.candidates:
        return []
    matrix = _matrix(ex.candidates, frozenset())
    scores = np.asarray(model.predict(matrix), dtype=np.float64)
    rows = [c.sentence.row for c in ex.candidates]
    return [(i, float(scores[i])) for i in blended_order(scores, matrix, blend, rows)]


def judge_rows(
    index: SearchIndex, examples: list[Example], ranked: list[list[tuple[int, float]]], span: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Answerability features and labels (the top-ranked sentence holds a gold answer)."""
    rows, labels = [], []
    for ex, order in zip(examples, ranked, strict=True):
        pairs = [(ex.candidates[i], s) for i, s in order]
        # The same reordering the service applies (who-is questions, answer kinds).
        pairs, _ = kind_first(ex.info, definition_first(ex.info.text, pairs))
        top = ex.candidates.index(pairs[0][0]) if pairs else -1
        span_p = 0.0
        if span and pairs and ex.info.language == "zh":
            span_p = span_probability(ex.info, index, pairs[0][0].sentence)
        rows.append(answerability_row(index, ex.info, pairs, ex.hits, ex.unknown, span_p))
        labels.append(int(top >= 0 and ex.labels[top] == 1))
    return np.array(rows, dtype=np.float64), np.array(labels)


def out_of_fold(examples: list[Example], variant: Variant) -> list[list[tuple[int, float]]]:
    """Ranker scores for each example from a ranker that never saw its question."""
    folds = [i % FOLDS for i in range(len(examples))]
    ranked: list[list[tuple[int, float]]] = [[] for _ in examples]
    for fold in range(FOLDS):
        train = [ex for ex, f in zip(examples, folds, strict=True) if f != fold]
        model = train_ranker(train, variant.drop)
        for i, ex in enumerate(examples):
            if folds[i] == fold:
                ranked[i] = _rank(model, ex, variant.blend)
    return ranked


def choose_threshold(probs: np.ndarray, positive: np.ndarray) -> float:
    """The highest threshold under which at most the target share of positives fall."""
    kept = np.sort(probs[positive == 1])
    if len(kept) == 0:
        return 0.5
    cut = int(np.floor(TARGET_FALSE_ABSTENTION * len(kept)))
    return float(kept[min(cut, len(kept) - 1)])


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    return float(greater)


class SpanMemo:
    """The span model's confidence per (question, sentence), computed once per training run."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.seen: dict[tuple[str, int, int, str], float] = {}

    def __call__(self, info: QuestionInfo, cand: Candidate) -> float:
        s = cand.sentence
        key = (info.text, s.start, s.end, s.doc)
        if key not in self.seen:
            self.seen[key] = span_probability(info, self.index, s)
        return self.seen[key]


def _rerank_rows(
    ex: Example, order: list[tuple[int, float]], variant: Variant, spans: SpanMemo
) -> np.ndarray | None:
    pairs = [(ex.candidates[i], s) for i, s in order]
    return rerank_rows(
        ex.info, pairs, variant.blend, variant.rerank_top, lambda c: spans(ex.info, c)
    )


def train_reranker(
    examples: list[Example],
    ranked: list[list[tuple[int, float]]],
    variant: Variant,
    spans: SpanMemo,
) -> Any:
    """The reranker over the top candidates of answerable questions whose gold is among them."""
    import lightgbm

    xs, ys, groups = [], [], []
    for ex, order in zip(examples, ranked, strict=True):
        if ex.kind != "kept":
            continue
        rows = _rerank_rows(ex, order, variant, spans)
        labels = [ex.labels[i] for i, _ in order[: variant.rerank_top]]
        if rows is None or not any(labels):
            continue
        xs.append(rows)
        ys.extend(labels)
        groups.append(len(rows))
    data = lightgbm.Dataset(
        np.vstack(xs), np.array(ys), group=groups, feature_name=list(RERANK_FEATURES)
    )
    return lightgbm.train(RERANK_PARAMS, data, num_boost_round=RERANK_ROUNDS)


def apply_reranker(
    model: Any, ex: Example, order: list[tuple[int, float]], variant: Variant, spans: SpanMemo
) -> list[tuple[int, float]]:
    rows = _rerank_rows(ex, order, variant, spans)
    if rows is None:
        return order
    return reordered(order, np.asarray(model.predict(rows)))


def rerank_out_of_fold(
    examples: list[Example],
    ranked: list[list[tuple[int, float]]],
    variant: Variant,
    spans: SpanMemo,
) -> list[list[tuple[int, float]]]:
    """Out-of-fold ranker orders reordered by rerankers that never saw the question (the
    folds of ``out_of_fold``), so the judges learn from orders like those met in service."""
    folds = [i % FOLDS for i in range(len(examples))]
    out = list(ranked)
    for fold in range(FOLDS):
        inside = [f != fold for f in folds]
        model = train_reranker(
            [ex for ex, keep in zip(examples, inside, strict=True) if keep],
            [o for o, keep in zip(ranked, inside, strict=True) if keep],
            variant,
            spans,
        )
        for i, ex in enumerate(examples):
            if folds[i] == fold:
                out[i] = apply_reranker(model, ex, ranked[i], variant, spans)
    return out


@dataclass
class Trained:
    variant: Variant
    ranker: Any
    judge: Any
    relevance: Any
    dense_judge: Any = None
    reranker: Any = None

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Answerability as the service computes it (see ``Models.probability``)."""
        p = np.asarray(self.judge.predict(rows), dtype=np.float64)
        if self.dense_judge is None:
            return p
        dense = np.asarray(self.dense_judge.predict(rows), dtype=np.float64)
        return (1 - self.variant.dense_mix) * p + self.variant.dense_mix * dense


def fit(variant: Variant, examples: list[Example], index: SearchIndex, span: bool) -> Trained:
    """Ranker on every training question; judges on out-of-fold ranker scores."""
    import lightgbm

    if not variant.near_miss:
        examples = [ex for ex in examples if ex.kind != "nearmiss"]
    examples = augment(examples, variant.english_share, SEED)
    examples = damp(examples, variant.damp_share, SEED)
    ranked = out_of_fold(examples, variant)
    reranker = None
    if variant.rerank_top and span:
        spans = SpanMemo(index)
        ranked = rerank_out_of_fold(examples, ranked, variant, spans)
        reranker = train_reranker(examples, ranked, variant, spans)
    rows, labels = judge_rows(index, examples, ranked, span)
    judge_x = rows.copy()
    for name in variant.judge_drop:
        judge_x[:, ANSWERABILITY_FEATURES.index(name)] = 0.0  # constant: never split on
    names = list(ANSWERABILITY_FEATURES)
    weights = np.array(
        [
            variant.paraphrase_weight
            if ex.kind in ("kept", "removed") and ex.overlap < variant.paraphrase_below
            else 1.0
            for ex in examples
        ]
    )
    judge = lightgbm.train(
        JUDGE_PARAMS,
        lightgbm.Dataset(judge_x, labels, weight=weights, feature_name=names),
        JUDGE_ROUNDS,
    )
    # Relevance: is the question about what the corpus covers at all (answerable or removed
    # paragraph) or not (off-topic, nonsense)? It splits "related" from "nothing relevant".
    on_topic = np.array([int(ex.kind in ON_TOPIC) for ex in examples])
    relevance = lightgbm.train(
        JUDGE_PARAMS, lightgbm.Dataset(rows, on_topic, feature_name=names), JUDGE_ROUNDS
    )
    dense_judge = None
    if variant.dense_mix > 0:
        dense_x = rows.copy()
        for name in set(ANSWERABILITY_FEATURES) - DENSE_JUDGE:
            dense_x[:, ANSWERABILITY_FEATURES.index(name)] = 0.0
        dense_judge = lightgbm.train(
            JUDGE_PARAMS,
            lightgbm.Dataset(dense_x, labels, weight=weights, feature_name=names),
            JUDGE_ROUNDS,
        )
    ranker = train_ranker(examples, variant.drop)
    return Trained(variant, ranker, judge, relevance, dense_judge, reranker)


@dataclass
class Scored:
    """A validation set scored by trained models."""

    kinds: np.ndarray
    correct: np.ndarray  # the top-ranked sentence holds the answer
    probs: np.ndarray
    relevant: np.ndarray
    empty: np.ndarray  # no candidate at all
    judged: np.ndarray  # what the service leaves to the model: Chinese, no unknown name
    english: np.ndarray
    unknown: np.ndarray  # names a thing the corpus never mentions
    overlap: np.ndarray  # share of the question's characters in its gold sentence
    groups: np.ndarray  # the threshold group of each question (``threshold_group``)


def score_set(trained: Trained, examples: list[Example], index: SearchIndex, span: bool) -> Scored:
    ranked = [_rank(trained.ranker, ex, trained.variant.blend) for ex in examples]
    if trained.reranker is not None:
        spans = SpanMemo(index)
        ranked = [
            apply_reranker(trained.reranker, ex, o, trained.variant, spans)
            for ex, o in zip(examples, ranked, strict=True)
        ]
    rows, labels = judge_rows(index, examples, ranked, span)
    return Scored(
        np.array([ex.kind for ex in examples]),
        labels.astype(bool),
        trained.probability(rows),
        np.asarray(trained.relevance.predict(rows), dtype=np.float64),
        np.array([not ex.candidates for ex in examples]),
        np.array([ex.info.language == "zh" and not ex.unknown for ex in examples]),
        np.array([ex.info.language != "zh" for ex in examples]),
        np.array([ex.info.language == "zh" and ex.unknown > 0 for ex in examples]),
        np.array([ex.overlap for ex in examples]),
        np.array([threshold_group(ex.info) for ex in examples]),
    )


def threshold_choices(sets: dict[str, Scored]) -> dict[str, dict[str, float]]:
    """Each validation set's own choice per answer kind (``THRESHOLD_GROUPS``): the highest
    threshold that keeps false abstention within the target among that kind's answerable
    questions there (with the count of those questions)."""
    out: dict[str, dict[str, float]] = {}
    for group in THRESHOLD_GROUPS:
        out[group] = {}
        for name, v in sets.items():
            positive = (v.kinds == "kept") & v.judged & (v.groups == group)
            if positive.any():
                out[group][name] = round(choose_threshold(v.probs, positive.astype(int)), 6)
                out[group][f"{name}_questions"] = int(positive.sum())
    return out


def choose_thresholds(sets: dict[str, Scored]) -> dict[str, float]:
    """One threshold per answer kind: the lowest of the sets' own choices, so false
    abstention stays within the target on each of them."""
    choices = threshold_choices(sets)
    return {
        group: min((v for k, v in c.items() if k in sets), default=0.0)
        for group, c in choices.items()
    }


def _per_question(s: Scored, thresholds: dict[str, float]) -> np.ndarray:
    return np.array([thresholds[g] for g in s.groups], dtype=np.float64)


def figures(
    s: Scored, thresholds: dict[str, float], related: float, related_en: float
) -> dict[str, float]:
    """Sentence accuracy, abstention and outcome shares at the chosen thresholds."""
    kept = s.kinds == "kept"
    threshold = _per_question(s, thresholds)
    # As rag/answering/selector.py decides: unknown names and empty input are "none",
    # English questions are answered when relevant, the rest by the answerability model.
    irrelevant = np.where(s.english, s.relevant < related_en, s.relevant < related) | s.empty
    said_no = np.where(s.english, irrelevant, s.unknown | s.empty | (s.probs < threshold))
    none = said_no & (irrelevant | s.unknown)
    low = ((s.kinds == "kept") | (s.kinds == "removed")) & (s.overlap < LOW_OVERLAP)
    out = {
        "questions": float(len(s.kinds)),
        "answerable": float(kept.sum()),
        "sentence_accuracy": float(s.correct[kept].mean()),
        "answerability_auc": _auc(s.probs, kept.astype(int)),
        # Answerable against paragraph-removed among questions that paraphrase their source
        # (under LOW_OVERLAP of their characters in the gold sentence): the bundled kind.
        "answerability_auc_low_overlap": _auc(s.probs[low], kept[low].astype(int)),
        "false_abstention": float(said_no[kept].mean()),
        "answered_and_correct": float((s.correct & ~said_no)[kept].mean()),
    }
    for kind in ("removed", "nearmiss", "unanswerable", "offtopic", "everyday", "nonsense"):
        mask = s.kinds == kind
        if mask.any():
            out[f"abstention_{kind}"] = float(said_no[mask].mean())
            out[f"none_{kind}"] = float(none[mask].mean())
    return {k: round(v, 4) for k, v in out.items() if np.isfinite(v)}  # no AUC without both


def bundled_examples(work: Path) -> tuple[list[Example], SearchIndex]:
    """The questions on the bundled articles (validation only: never trained on)."""
    settings = Settings(index_dir=work / "bundled-index")
    engine = load_engine(settings)
    answerer = Answerer(engine)
    examples = []
    for path in BUNDLED_SETS:
        if not path.is_file():
            continue
        for q in read_questions(path, engine.index.documents):
            prepared = answerer.prepare(q.question)
            cands = evidence_candidates(engine.index, prepared.info, prepared.scored, prepared.pool)
            gold = [(e.doc, e.start, e.end) for e in q.evidence]
            labels = [int(_holds(c, gold)) for c in cands]
            kind = "kept" if q.answerable else "unanswerable"
            unknown = len(unknown_names(prepared.info, engine.index))
            examples.append(Example(kind, prepared.info, cands, labels, prepared.pool, unknown))
    return examples, engine.index


SENTENCE_CACHE = "sentence-vectors.npz"  # beside a QA corpus's index: see _sentence_cache


class _SentenceCache:
    """Sentence vectors kept on disk beside a training or validation index, so a second
    training run does not embed again the ~20k sentences its questions reach (the service
    embeds them lazily, on first use). Keyed by the embedder and the text of every sentence row,
    not by the build: a rebuild of the same corpus (a new index format) keeps the vectors, and
    any change of the sentences drops them. Plain arrays only."""

    def __init__(self, index: SearchIndex, index_dir: Path) -> None:
        self.index = index
        self.path = index_dir / SENTENCE_CACHE
        digest = hashlib.sha256(index.manifest.embedder.encode())
        for row in range(len(index.sentences)):
            digest.update(index.sentence_text(row).encode() + b"\0")
        self.key = digest.hexdigest()
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                if "key" in data and str(data["key"]) == self.key:
                    index.sentence_vectors.preload(data["rows"], data["vectors"])

    def save(self) -> None:
        rows, vectors = self.index.sentence_vectors.snapshot()
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, key=np.array(self.key), rows=rows, vectors=vectors)
        tmp.replace(self.path)


def _examples_for(
    qc: QACorpus,
    extra: list[str],
    limit: int | None,
    seed: int,
    settings: Settings,
    near_miss_share: float,
    side: str,
) -> tuple[list[Example], SearchIndex]:
    engine = load_engine(settings, progress=True)
    answerer = Answerer(engine)
    cache = _SentenceCache(engine.index, settings.index_dir)
    examples = collect(
        answerer, qc, extra, limit, seed, near_miss_share, cache.save, everyday_questions(side)
    )
    cache.save()
    return examples, engine.index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paragraphs", type=int, default=900, help="training paragraphs to index")
    parser.add_argument("--validation-questions", type=int, default=0, help="0 = all")
    parser.add_argument("--work", type=Path, default=Path("/work/cache/qa"))
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    parser.add_argument("--data", type=Path, default=None, help="folder of the shared QA sets")
    parser.add_argument(
        "--near-miss",
        type=float,
        default=NEAR_MISS_SHARE,
        help="share of answerable questions also asked as near misses (0 = none)",
    )
    parser.add_argument("--no-span", action="store_true", help="leave the span feature at 0")
    parser.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=sorted(VARIANTS)
    )
    parser.add_argument(
        "--no-bundled", dest="bundled", action="store_false", help="skip the bundled-article sets"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()

    qa = load_sets(args.data) if args.data else load_sets()
    train_side, validation_side = split(qa)
    train_qa = sample(train_side, args.paragraphs)
    # Off-topic questions: training questions whose article is not in the sampled corpus.
    sampled_articles = {(p.source, p.article) for p in train_qa.paragraphs.values()}
    outside = [
        i.question
        for i in train_side.items
        if (train_side.paragraphs[i.paragraph].source, train_side.paragraphs[i.paragraph].article)
        not in sampled_articles
    ]
    random.Random(SEED).shuffle(outside)
    outside = outside[: max(20, len(train_qa.items) // 6)]
    span = not args.no_span

    print(f"training corpus: {len(train_qa.paragraphs)} paragraphs", file=sys.stderr)
    train_qc = lay_out(train_qa, args.work / f"train-{args.paragraphs}")
    settings = Settings(corpus_dir=train_qc.corpus_dir, index_dir=train_qc.index_dir)
    train_examples, train_index = _examples_for(
        train_qc, outside, None, SEED, settings, args.near_miss, "train"
    )

    # Validation: the other side of the split, its own corpus; off-topic = training questions.
    val_qa = validation_side
    if args.paragraphs < 300:  # the quick path used by tests
        val_qa = sample(validation_side, max(10, args.paragraphs // 3))
    name = "validation" if val_qa is validation_side else f"validation-{len(val_qa.paragraphs)}"
    val_qc = lay_out(val_qa, args.work / name)
    val_settings = Settings(corpus_dir=val_qc.corpus_dir, index_dir=val_qc.index_dir)
    val_extra = [i.question for i in train_qa.items[: max(20, len(val_qa.items) // 6)]]
    limit = args.validation_questions or None
    val_examples, val_index = _examples_for(
        val_qc, val_extra, limit, SEED + 1, val_settings, args.near_miss, "validation"
    )
    bundled, bundled_index = bundled_examples(args.work) if args.bundled else ([], val_index)

    import lightgbm

    report: dict[str, dict[str, Any]] = {}
    results: dict[str, tuple[Trained, dict[str, float], float, float]] = {}
    for name in args.variants:
        trained = fit(VARIANTS[name], train_examples, train_index, span)
        wiki = score_set(trained, val_examples, val_index, span)
        sets = {"validation": wiki}
        if bundled:
            sets["bundled"] = score_set(trained, bundled, bundled_index, span)
        # One threshold per answer kind for every validation set: the lowest of each set's
        # own choice, so false abstention stays within the target on each.
        threshold = choose_thresholds(sets)
        on_topic = (wiki.kinds == "kept") | (wiki.kinds == "removed")
        related = choose_threshold(wiki.relevant, on_topic.astype(int))
        # English questions: no public set has them, so their cut-off is the same rule on the
        # English questions of the bundled validation sets (few: see the card).
        related_en = related
        if "bundled" in sets:
            b = sets["bundled"]
            english_kept = (b.kinds == "kept") & b.english
            if english_kept.any():
                related_en = choose_threshold(b.relevant, english_kept.astype(int))
        report[name] = {
            "thresholds": {k: round(v, 6) for k, v in threshold.items()},
            "threshold_choices": threshold_choices(sets),
            "related_threshold": round(related, 6),
            "related_threshold_english": round(related_en, 6),
            **{k: figures(v, threshold, related, related_en) for k, v in sets.items()},
        }
        results[name] = (trained, threshold, related, related_en)
        print(f"variant {name}: {json.dumps(report[name])}", file=sys.stderr)

    def merit(name: str) -> float:
        """The issue's targets, mean over the validation sets: the share of answerable
        questions answered from the right sentence plus the share of unanswerable ones
        (paragraph removed; the bundled sets' own) refused."""
        total = []
        for key in ("validation", "bundled"):
            v = report[name].get(key)
            if v:
                refused = v.get("abstention_removed", v.get("abstention_unanswerable", 0.0))
                total.append(v["answered_and_correct"] + refused)
        return float(np.mean(total))

    chosen = max(args.variants, key=merit)
    trained, threshold, related, related_en = results[chosen]
    del train_index

    args.out.mkdir(parents=True, exist_ok=True)
    trained.ranker.save_model(str(args.out / EVIDENCE_MODEL))
    trained.judge.save_model(str(args.out / ANSWERABILITY_MODEL))
    (args.out / DENSE_ANSWERABILITY_MODEL).unlink(missing_ok=True)
    if trained.dense_judge is not None:
        trained.dense_judge.save_model(str(args.out / DENSE_ANSWERABILITY_MODEL))
    trained.relevance.save_model(str(args.out / RELEVANCE_MODEL))
    (args.out / RERANK_MODEL).unlink(missing_ok=True)
    if trained.reranker is not None:
        trained.reranker.save_model(str(args.out / RERANK_MODEL))
    card = {
        "what": "evidence ranker (LightGBM lambdarank), answerability and relevance classifiers",
        "command": "python -m rag.answering.train_evidence " + " ".join(argv or sys.argv[1:]),
        "data": "shared/data: CMRC 2018 trial, DRCD dev + test (t2s); split by article, "
        "seed 20261129, 20% validation; 30% of paragraphs left out of each corpus",
        "train_paragraphs": len(train_qa.paragraphs),
        "train_questions": len(train_examples),
        "validation_paragraphs": len(val_qa.paragraphs),
        "seed": SEED,
        "folds": FOLDS,
        "ranker_params": RANKER_PARAMS,
        "ranker_rounds": RANKER_ROUNDS,
        "rerank_top": trained.variant.rerank_top if trained.reranker is not None else 0,
        "rerank_features": list(RERANK_FEATURES),
        "rerank_params": RERANK_PARAMS,
        "rerank_rounds": RERANK_ROUNDS,
        "judge_params": JUDGE_PARAMS,
        "judge_rounds": JUDGE_ROUNDS,
        "evidence_features": list(EVIDENCE_FEATURES),
        "answerability_features": list(ANSWERABILITY_FEATURES),
        "variant": {
            "name": chosen,
            "dropped_features": sorted(trained.variant.drop),
            "english_share": trained.variant.english_share,
            "dropped_answerability_features": sorted(trained.variant.judge_drop),
            "blend": trained.variant.blend,
            "rule": "highest mean over the validation sets of answered-and-correct plus "
            "abstention on unanswerable questions (paragraph removed; the bundled sets' own)",
        },
        "blend": trained.variant.blend,
        "dense_mix": trained.variant.dense_mix,
        "span_feature": span,
        "span_model_sha256": _sha256(MODELS_DIR / "span.txt") if span else None,
        "thresholds": threshold,
        "threshold_rule": f"per answer kind: highest p with at most {TARGET_FALSE_ABSTENTION:.0%} "
        "of that kind's answerable questions below it, on each validation set",
        "related_threshold": related,
        "related_threshold_english": related_en,
        "related_rule": f"highest relevance p with at most {TARGET_FALSE_ABSTENTION:.0%} of "
        "on-topic validation questions (answerable or paragraph removed) below it; for English "
        "questions the same rule on the English answerable questions of the bundled sets",
        "validation": report[chosen],
        "variants": report,
        "fixed_examples": _fixed_examples(val_examples[:3], trained, val_index, span),
        "fixed_rerank_examples": _fixed_rerank_examples(val_examples, trained, val_index),
        "lightgbm": lightgbm.__version__,
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / CARD).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(json.dumps({"chosen": chosen, **report[chosen]}, indent=2))
    return 0


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _fixed_examples(
    examples: list[Example], trained: Trained, index: SearchIndex, span: bool
) -> list[dict[str, object]]:
    """A few feature rows with the scores the trained models give them, for a reload check."""
    out = []
    for ex in examples:
        if not ex.candidates:
            continue
        ranked = _rank(trained.ranker, ex, trained.variant.blend)
        rows, _ = judge_rows(index, [ex], [ranked], span)
        row = np.array([ex.candidates[0].features], dtype=np.float64)
        out.append(
            {
                "question": ex.info.text,
                "evidence_row": list(ex.candidates[0].features),
                "evidence_score": float(np.asarray(trained.ranker.predict(row))[0]),
                "answerability_row": rows[0].tolist(),
                "answerability": float(trained.probability(rows)[0]),
                "relevance": float(np.asarray(trained.relevance.predict(rows))[0]),
            }
        )
    return out


def _fixed_rerank_examples(
    examples: list[Example], trained: Trained, index: SearchIndex
) -> list[dict[str, object]]:
    """The first few reranker rows of validation questions with the scores it gave them."""
    if trained.reranker is None:
        return []
    spans = SpanMemo(index)
    out: list[dict[str, object]] = []
    for ex in examples:
        order = _rank(trained.ranker, ex, trained.variant.blend)
        rows = _rerank_rows(ex, order, trained.variant, spans)
        if rows is None:
            continue
        scores = np.asarray(trained.reranker.predict(rows), dtype=np.float64)
        out.append({"question": ex.info.text, "rows": rows.tolist(), "scores": scores.tolist()})
        if len(out) == 3:
            break
    return out


if __name__ == "__main__":
    raise SystemExit(main())
