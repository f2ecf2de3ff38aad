"""Chunks are exact slices of the body, within size, overlapping by whole sentences."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import Chunk, chunk_corpus, chunk_document, hard_max_chars, sentence_pieces
from rag.corpus import Corpus, Document, load_corpus
from rag.settings import BUNDLED_CORPUS


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(BUNDLED_CORPUS)


def make_document(text: str, body: tuple[tuple[int, int], ...]) -> Document:
    return Document("gen.txt", Path("gen.txt"), text, "标题", None, body, "0" * 64)


def check_chunks(doc: Document, chunks: list[Chunk], max_chars: int, overlap: int) -> None:
    """Every promise chunk_document makes, checked against the document it came from."""
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    for span_start, span_end in doc.body:
        sentences = sentence_pieces(doc.text, span_start, span_end, max_chars)
        mine = [c for c in chunks if span_start <= c.start < span_end]
        for chunk in mine:
            assert chunk.text == doc.text[chunk.start : chunk.end]
            assert (chunk.doc, chunk.title) == (doc.id, doc.title)
            # Inside one body span, so never across debris.
            assert chunk.end <= span_end
            # Whole sentences only.
            assert chunk.start in {s for s, _ in sentences}
            assert chunk.end in {e for _, e in sentences}
            assert len(chunk.text) <= max_chars or (chunk.start, chunk.end) in sentences
            assert len(chunk.text) <= hard_max_chars(max_chars)
        for s, e in sentences:
            assert any(c.start <= s and e <= c.end for c in mine), "sentence left out"
        for before, after in pairwise(mine):
            # Each chunk brings new text: no repeats, no chunk inside its predecessor.
            assert before.start < after.start and before.end < after.end
            if overlap == 0:
                assert before.end <= after.start
    spans = [(c.start, c.end) for c in chunks]
    assert all(any(bs <= s and e <= be for bs, be in doc.body) for s, e in spans)


@pytest.mark.parametrize(("max_chars", "overlap"), [(200, 1), (80, 0), (120, 2), (40, 5)])
def test_real_articles(corpus: Corpus, max_chars: int, overlap: int) -> None:
    for doc in corpus.documents:
        check_chunks(doc, chunk_document(doc, max_chars, overlap), max_chars, overlap)


def test_chunk_corpus_keeps_document_order(corpus: Corpus) -> None:
    chunks = chunk_corpus(corpus)
    assert [c.doc for c in chunks] == sorted(c.doc for c in chunks)
    assert {c.doc for c in chunks} == {d.id for d in corpus.documents}
    per_doc = [c for c in chunks if c.doc == corpus.documents[0].id]
    assert per_doc == chunk_document(corpus.documents[0])


def test_adjacent_chunks_share_the_last_sentence() -> None:
    text = "第一句话。第二句话。第三句话。第四句话。"
    doc = make_document(text, ((0, len(text)),))
    texts = [c.text for c in chunk_document(doc, max_chars=10, overlap=1)]
    assert texts == ["第一句话。第二句话。", "第二句话。第三句话。", "第三句话。第四句话。"]
    texts = [c.text for c in chunk_document(doc, max_chars=10, overlap=0)]
    assert texts == ["第一句话。第二句话。", "第三句话。第四句话。"]


def test_overlap_is_dropped_when_the_next_sentence_would_not_fit() -> None:
    text = "短句。" + "长" * 16 + "。"
    doc = make_document(text, ((0, len(text)),))
    texts = [c.text for c in chunk_document(doc, max_chars=10, overlap=3)]
    assert texts == ["短句。", "长" * 16 + "。"]


def test_chunks_stay_inside_their_body_span() -> None:
    text = "甲句。乙句。\n导航|首页\n丙句。丁句。"
    first = (0, text.index("\n"))
    second = (text.index("丙"), len(text))
    chunks = chunk_document(make_document(text, (first, second)), max_chars=100)
    assert [c.text for c in chunks] == ["甲句。乙句。", "丙句。丁句。"]


@pytest.mark.parametrize(("max_chars", "overlap"), [(0, 1), (10, -1)])
def test_bad_parameters_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(make_document("句子。", ((0, 3),)), max_chars, overlap)


PIECES = [
    "阿里云",
    "模型",
    "Qwen2.5",
    "3.2T",
    "x",
    *"。！？;!…,，、.“”「」",
    " ",
    "\n",
    "\r\n",
    "\n\n",
    "长" * 30,  # runs without punctuation, with and without spaces, meet the hard maximum
    "word ",
    "Qwen" * 12,
]


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = "".join(draw(st.lists(st.sampled_from(PIECES), max_size=120)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6, unique=True)))
    body = tuple((s, e) for s, e in zip(cuts[::2], cuts[1::2], strict=False) if s < e)
    return make_document(text, body)


@settings(max_examples=200, deadline=None)
@given(doc=documents(), max_chars=st.integers(1, 40), overlap=st.integers(0, 3))
def test_properties_on_generated_documents(doc: Document, max_chars: int, overlap: int) -> None:
    check_chunks(doc, chunk_document(doc, max_chars, overlap), max_chars, overlap)


def test_a_line_without_punctuation_is_cut_at_the_hard_maximum() -> None:
    """The reported case in small: one long line of one character, and one of spaced words."""
    for text in ["字" * 5000, "word " * 1000 + "end"]:
        doc = make_document(text, ((0, len(text)),))

        chunks = chunk_document(doc, max_chars=200)

        check_chunks(doc, chunks, 200, 1)
        assert max(len(c.text) for c in chunks) <= 400
        assert len(chunks) >= len(text) // 400
        assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    words = chunk_document(make_document("word " * 1000, ((0, 5000),)), max_chars=200)
    assert all(c.text.endswith("word") for c in words), "cut between words, not inside one"


def test_the_hard_maximum_leaves_the_bundled_articles_as_they_were(corpus: Corpus) -> None:
    """Real articles have punctuation: no chunk of theirs is near the hard maximum, so the cut
    never changes what they index."""
    for doc in corpus.documents:
        assert max(len(c.text) for c in chunk_document(doc)) <= 200
