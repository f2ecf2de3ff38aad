"""Retrieval over the bundled index: exact cited passages, cross-lingual and numeric queries,
the dev-set floor, and the pieces underneath (metrics, tokens, vector index kinds)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import E5Embedder
from rag.errors import InvalidInputError
from rag.evaluation import Evidence, covers, evaluate_retrieval, read_questions, retrieval_scores
from rag.index import SearchIndex
from rag.retrieval import Hit, Retriever
from rag.tokens import tokenize
from rag.vectors import VectorIndex, choose_kind

DEV_SET = Path(__file__).parents[2] / "shared/eval/dev.jsonl"

QUERIES = [
    "阿里云2022年在中国云市场的份额是多少？",
    "通义千问降价后每百万tokens多少钱？",
    "What does Alibaba Cloud say about open-source models?",
]
QUERY_IDS = ["zh-share", "zh-price", "en-open-source"]


def _overlap(a: Hit, b: Hit) -> int:
    if a.doc != b.doc:
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def test_every_indexed_chunk_is_an_exact_slice_of_its_article(bundled_index: SearchIndex) -> None:
    assert len(bundled_index.documents) >= 2
    for chunk in bundled_index.chunks:
        doc = bundled_index.documents[chunk.doc]
        assert chunk.text == doc.text[chunk.start : chunk.end] != ""
        assert chunk.title == doc.title


@pytest.mark.parametrize("query", QUERIES, ids=QUERY_IDS)
def test_hits_are_exact_slices_with_scores_in_rank_order(
    retriever: Retriever, bundled_index: SearchIndex, query: str
) -> None:
    hits = retriever.retrieve(query, 5)

    assert len(hits) == 5
    for hit in hits:
        doc = bundled_index.documents[hit.doc]
        assert hit.title == doc.title
        assert 0 <= hit.start < hit.end <= len(doc.text)
        assert hit.text == doc.text[hit.start : hit.end]
        assert np.isfinite(hit.score)
        assert hit.as_dict() == {
            "doc": hit.doc,
            "title": hit.title,
            "text": hit.text,
            "start": hit.start,
            "end": hit.end,
            "score": round(hit.score, 6),
        }
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("query", QUERIES, ids=QUERY_IDS)
def test_no_two_hits_overlap_by_more_than_half(retriever: Retriever, query: str) -> None:
    hits = retriever.retrieve(query, 10)

    for a, b in combinations(hits, 2):
        shorter = min(a.end - a.start, b.end - b.start)
        assert 2 * _overlap(a, b) <= shorter, (a, b)


def test_an_english_question_finds_the_chinese_passage(
    retriever: Retriever, bundled_index: SearchIndex
) -> None:
    fact = "阿里云在2022年占中国云市场份额的36%"
    (doc,) = [d for d in bundled_index.documents.values() if fact in d.text]
    at = doc.text.index(fact)

    hits = retriever.retrieve("What was Alibaba Cloud's share of the Chinese cloud market in 2022?")

    assert any(h.doc == doc.id and h.start <= at < h.end and "36%" in h.text for h in hits[:3])


@pytest.mark.parametrize("token", ["3.2T", "Qwen2.5", "4000万"])
def test_a_numeric_token_query_ranks_a_chunk_holding_it_first(
    retriever: Retriever, bundled_index: SearchIndex, token: str
) -> None:
    assert any(token in c.text for c in bundled_index.chunks)

    assert token in retriever.retrieve(token, 5)[0].text


@pytest.mark.parametrize(("query", "k"), [("", 5), ("  \n\t", 5), ("阿里云", 0)])
def test_an_empty_query_or_no_room_is_invalid_input(
    retriever: Retriever, query: str, k: int
) -> None:
    with pytest.raises(InvalidInputError):
        retriever.retrieve(query, k)


@pytest.mark.skipif(not DEV_SET.is_file(), reason=f"{DEV_SET} is absent")
def test_dev_set_hit_at_5_stays_above_its_floor(
    retriever: Retriever, bundled_index: SearchIndex
) -> None:
    questions = read_questions(DEV_SET, bundled_index.documents)

    def search(question: str, k: int) -> list[tuple[str, int, int]]:
        return [(h.doc, h.start, h.end) for h in retriever.retrieve(question, k)]

    report = evaluate_retrieval(questions, search)

    assert report["all"]["n"] == sum(bool(q.evidence) for q in questions) > 0
    # A floor well under the measured value: it catches regressions, it is not a target.
    assert report["all"]["hit@5"] >= 0.85, report


# --- metrics on hand-made spans -----------------------------------------------------------

QUOTE = Evidence("a.txt", "ten chars!", 10, 20)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (("a.txt", 10, 20), True),
        (("a.txt", 0, 100), True),
        (("a.txt", 15, 40), True),  # exactly half
        (("a.txt", 0, 15), True),
        (("a.txt", 16, 40), False),
        (("a.txt", 0, 14), False),
        (("a.txt", 20, 30), False),  # touching, no overlap
        (("b.txt", 10, 20), False),
    ],
)
def test_covers_needs_half_of_the_quote_in_the_same_document(
    span: tuple[str, int, int], expected: bool
) -> None:
    assert covers(span, QUOTE) is expected


def test_retrieval_scores_rank_the_first_covering_span() -> None:
    miss = ("a.txt", 50, 60)
    hit = ("a.txt", 12, 22)
    elsewhere = Evidence("b.txt", "four", 0, 4)

    assert retrieval_scores([miss, miss, hit], [QUOTE]) == {
        "hit@1": 0.0,
        "hit@5": 1.0,
        "mrr@10": pytest.approx(1 / 3),
        "all_evidence@5": 1.0,
    }
    assert retrieval_scores([hit, ("b.txt", 100, 200)], [QUOTE, elsewhere]) == {
        "hit@1": 1.0,
        "hit@5": 1.0,
        "mrr@10": 1.0,
        "all_evidence@5": 0.0,
    }
    assert retrieval_scores([miss] * 5 + [hit], [QUOTE]) == {
        "hit@1": 0.0,
        "hit@5": 0.0,
        "mrr@10": pytest.approx(1 / 6),
        "all_evidence@5": 0.0,
    }
    assert retrieval_scores([miss] * 10 + [hit], [QUOTE])["mrr@10"] == 0.0
    assert retrieval_scores([], [QUOTE])["hit@5"] == 0.0


# --- lexical tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("阿里云占中国云市场份额的36%", "36%"),
        ("下载量已经超过4000万", "4000万"),
        ("支持3.2T RDMA网络带宽", "3.2t"),
        ("开源模型Qwen2.5发布", "qwen2.5"),
        ("其中72B版本性能领先", "72b"),
    ],
)
def test_numbers_with_units_and_model_names_stay_whole(text: str, whole: str) -> None:
    tokens = tokenize(text)

    assert whole in tokens
    # Never split into a bare digit that would match every number in the corpus.
    assert not {"3", "2", "5", "7"} & set(tokens)


def test_model_names_also_yield_their_parts() -> None:
    assert {"qwen2.5", "qwen", "2.5"} <= set(tokenize("Qwen2.5"))
    assert {"3.2t", "3.2"} <= set(tokenize("3.2T"))
    assert {"72b", "72"} <= set(tokenize("72B"))


def test_latin_is_lower_cased_and_stop_words_are_removed() -> None:
    assert tokenize("What is the Market Share of Alibaba Cloud?") == [
        "market",
        "share",
        "alibaba",
        "cloud",
    ]
    tokens = tokenize("阿里云的市场份额是多少？")
    assert {"阿里", "份额"} <= set(tokens)
    assert not {"的", "是", "多少", "？"} & set(tokens)
    assert tokenize("的 了 the of ？！") == []


# --- vector index kinds ---------------------------------------------------------------------


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_hnsw_and_flat_agree_on_the_nearest_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = _unit_rows(rng, 400, 384)
    targets = rng.choice(len(vectors), 40, replace=False)
    queries = vectors[targets] + 0.3 * _unit_rows(rng, len(targets), 384)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    flat = VectorIndex.build(vectors, "flat")
    hnsw = VectorIndex.build(vectors, "hnsw")
    hnsw.save(tmp_path / "hnsw.faiss")
    reloaded = VectorIndex.load(tmp_path / "hnsw.faiss", exact=vectors)
    quantised = VectorIndex.load(tmp_path / "hnsw.faiss")  # no float rows: 8-bit scores only

    flat_scores, flat_ids = flat.search(queries, 5)
    hnsw_scores, hnsw_ids = hnsw.search(queries, 5)
    _, reloaded_ids = reloaded.search(queries, 5)
    _, quantised_ids = quantised.search(queries, 5)

    assert (flat.kind, hnsw.kind, reloaded.kind) == ("flat", "hnsw", "hnsw")
    assert flat.size == hnsw.size == 400 and flat.dim == hnsw.dim == 384
    assert np.array_equal(flat_ids[:, 0], targets)
    assert np.array_equal(hnsw_ids[:, 0], flat_ids[:, 0])
    assert np.array_equal(reloaded_ids, hnsw_ids)
    assert np.array_equal(quantised_ids[:, 0], flat_ids[:, 0])
    # Re-scored with the float rows: the exact cosines, not their 8-bit approximations.
    assert np.allclose(hnsw_scores, flat_scores, atol=1e-5)
    # Inner product over unit vectors is the cosine.
    expected = np.sum(queries * vectors[targets], axis=1)
    assert np.allclose(flat_scores[:, 0], expected, atol=1e-5)


def test_ivf_and_flat_agree_on_the_nearest_vector_and_ivf_reloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    vectors = _unit_rows(rng, 3000, 64)
    targets = rng.choice(len(vectors), 40, replace=False)
    queries = vectors[targets] + 0.2 * _unit_rows(rng, len(targets), 64)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    flat = VectorIndex.build(vectors, "flat")
    ivf = VectorIndex.build(vectors, "ivf")
    ivf.save(tmp_path / "ivf.faiss")
    reloaded = VectorIndex.load(tmp_path / "ivf.faiss", exact=vectors)

    flat_scores, flat_ids = flat.search(queries, 5)
    ivf_scores, ivf_ids = ivf.search(queries, 5)
    _, reloaded_ids = reloaded.search(queries, 5)

    assert (ivf.kind, reloaded.kind, ivf.size) == ("ivf", "ivf", 3000)
    assert np.array_equal(ivf_ids[:, 0], flat_ids[:, 0])
    assert np.array_equal(reloaded_ids, ivf_ids)
    # Re-scored with the float rows: exact cosines wherever the same rows were found.
    same = ivf_ids == flat_ids
    assert np.allclose(ivf_scores[same], flat_scores[same], atol=1e-5)


def test_search_never_returns_more_rows_than_the_index_holds() -> None:
    index = VectorIndex.build(_unit_rows(np.random.default_rng(1), 3, 8))

    scores, ids = index.search(_unit_rows(np.random.default_rng(2), 1, 8)[0], 10)

    assert ids.shape == scores.shape == (1, 3)
    assert sorted(ids[0]) == [0, 1, 2]


@pytest.mark.parametrize(
    ("setting", "count", "kind"),
    [
        ("auto", 999, "flat"),
        ("auto", 1000, "hnsw"),
        ("auto", 5000, "hnsw"),
        ("flat", 10**6, "flat"),
        ("hnsw", 1, "hnsw"),
        ("auto", 10**6, "hnsw"),  # IVF is asked for, never chosen (its recall on e5)
        ("ivf", 1, "ivf"),
    ],
)
def test_choose_kind_switches_to_hnsw_at_the_threshold(setting: str, count: int, kind: str) -> None:
    assert choose_kind(setting, count, threshold=1000) == kind


def _full_bm25_top(index: SearchIndex, query: str, pool: int) -> tuple[list[int], np.ndarray]:
    """Reference: score every chunk (bm25s), keep the positive ones, best first, ties by row."""
    scores = index.lexical.scores(query)
    rows = np.flatnonzero(scores > 0)
    return sorted((int(r) for r in rows), key=lambda r: (-scores[r], r))[:pool], scores


def test_bm25_top_k_search_equals_scoring_every_chunk(bundled_index: SearchIndex) -> None:
    questions = [q.question for q in read_questions(DEV_SET, bundled_index.documents)]
    extra = [0, 3, len(bundled_index.chunks) - 1]
    for question in [*QUERIES, *questions]:
        ranked, scores = bundled_index.lexical.search(question, 10, extra)
        expected, full = _full_bm25_top(bundled_index, question, 10)
        assert ranked == expected, question
        assert set(extra) | set(ranked) <= set(scores)
        for row, score in scores.items():
            assert score == pytest.approx(float(full[row]), abs=1e-4)


@pytest.mark.parametrize("budget", [10, 200, 10**7])
def test_bm25_search_past_its_postings_budget_reads_impact_lists_and_says_when_exact(
    bundled_index: SearchIndex, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    """Over the budget, the heads of the impact-ordered lists give rows scored exactly, best
    first; whenever the search calls itself exact its top rows are those of scoring every
    chunk, and reading whole lists it always is."""
    import rag.lexical

    monkeypatch.setattr(rag.lexical, "POSTINGS_BUDGET", 1)
    monkeypatch.setattr(rag.lexical, "IMPACT_BUDGET", budget)
    questions = [q.question for q in read_questions(DEV_SET, bundled_index.documents)]
    extra = [0, 3, len(bundled_index.chunks) - 1]
    exact = 0
    for question in [*QUERIES, *questions]:
        ranked, scores = bundled_index.lexical.search(question, 10, extra)
        expected, full = _full_bm25_top(bundled_index, question, 10)
        assert bool(ranked) == bool(expected), question
        assert set(ranked) <= set(np.flatnonzero(full > 0))
        assert [scores[r] for r in ranked] == sorted((scores[r] for r in ranked), reverse=True)
        assert set(extra) | set(ranked) <= set(scores)
        for row, score in scores.items():
            assert score == pytest.approx(float(full[row]), abs=1e-4)
        if bundled_index.lexical.exact:
            exact += 1
            assert ranked == expected, question
    assert exact == len(QUERIES) + len(questions) if budget == 10**7 else exact >= 0
    if budget == 10:  # ten postings per query cannot prove a top 10 on this corpus
        assert exact < len(QUERIES) + len(questions)
    monkeypatch.setattr(rag.lexical, "POSTINGS_BUDGET", 10**9)  # within it: exact again
    bundled_index.lexical.search(QUERIES[0], 10)
    assert bundled_index.lexical.exact


def test_sentence_vectors_are_embedded_on_first_use_then_served_from_the_cache(
    bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    vectors = bundled_index.sentence_vectors
    vectors.bind(e5)
    vectors.clear()
    rows = [2, 0, 5, 2]
    before = vectors.embedded
    first = vectors[rows]
    expected = e5.embed_passages([bundled_index.sentence_text(r) for r in rows])
    assert first.shape == (4, 384)
    assert np.allclose(first, expected, atol=1e-5)
    assert vectors.embedded - before == 3  # the repeated row once
    again = vectors[[5, 2]]
    assert vectors.embedded - before == 3
    assert np.array_equal(again, first[[2, 0]])


def test_retrieval_embeds_only_the_sentences_of_its_best_candidates(
    bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    lazy = Retriever(bundled_index, e5, sentence_depth=8)
    bundled_index.sentence_vectors.clear()
    hits = lazy.retrieve(QUERIES[0], 5)
    embedded = len(bundled_index.sentence_vectors)
    assert 0 < embedded <= sum(len(bundled_index.chunk_sentences[h.row]) for h in hits) + 40
    assert embedded < len(bundled_index.sentences)
    # Every sentence embedded up front and scored for every candidate: the same top passage.
    bundled_index.sentence_vectors[list(range(len(bundled_index.sentences)))]
    everything = Retriever(bundled_index, e5, sentence_depth=None)
    assert everything.retrieve(QUERIES[0], 5)[0].row == hits[0].row
