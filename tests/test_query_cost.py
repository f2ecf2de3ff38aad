"""A long question costs a bounded amount: the embedder reads at most one 512-token window of
it, and a question of many "?"-ended clauses is split into at most three parts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rag.answer import Answerer
from rag.embedding import E5_MAX_TOKENS, E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.question import MAX_SUB_QUESTIONS, sub_questions
from rag.retrieval import Retriever
from rag.settings import Settings

SHORT = "阿里云2022年的市场份额是多少?"
LONG = ("阿里云在中国云市场的份额和通义千问的价格" * 100)[:2000]  # about 1,300 tokens


def test_a_short_question_reaches_the_model_unchanged(e5: E5Embedder) -> None:
    assert e5.fit(SHORT) == SHORT
    assert e5.fit("") == ""


def test_a_long_question_is_cut_to_one_window_of_the_model(e5: E5Embedder) -> None:
    tokens = e5._model.token_count  # the model's own tokenizer, prefix and specials included

    fitted = e5.fit(LONG)

    assert tokens(LONG, True) > 2 * E5_MAX_TOKENS
    assert LONG.startswith(fitted)
    assert tokens(fitted, True) <= E5_MAX_TOKENS
    assert tokens(LONG[: len(fitted) + 1], True) > E5_MAX_TOKENS  # the longest prefix that fits


def test_embedding_a_long_question_embeds_only_what_fits(e5: E5Embedder) -> None:
    long_vector, fitted_vector = e5.embed_queries([LONG, e5.fit(LONG)])

    assert np.allclose(long_vector, fitted_vector, atol=1e-6)


def test_a_lone_surrogate_never_crashes_the_embedder(e5: E5Embedder) -> None:
    """Callers refuse such text with a 400; a path that misses it still gets a vector."""
    vectors = e5.embed_queries(["\ud800阿里云"])

    assert vectors.shape == (1, e5.dim)
    assert np.isfinite(vectors).all()


@pytest.mark.parametrize("count", [2, 3, 4, 400])
def test_sub_questions_are_capped(count: int) -> None:
    clauses = [f"第{i}个问题是什么?" for i in range(count)]

    parts = sub_questions("".join(clauses))

    assert parts == clauses[: min(count, MAX_SUB_QUESTIONS)]


class CountingEmbedder:
    """The real embedder, counting the query texts it is given."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner, self.id, self.dim = inner, inner.id, inner.dim
        self.queries: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries.extend(texts)
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)


def test_a_question_of_many_clauses_embeds_at_most_four_texts(
    bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    counting = CountingEmbedder(e5)
    retriever = Retriever(bundled_index, counting)
    answerer = Answerer(Engine(Settings.model_construct(), counting, bundled_index, retriever))
    question = "".join(f"阿里云第{i}年的份额?" for i in range(150))  # 150 distinct clauses

    answer = answerer.answer(question, "extractive")

    assert answer.outcome in ("answered", "related", "none")
    assert len(counting.queries) <= 1 + MAX_SUB_QUESTIONS  # the whole question, then its parts
