"""Whether the articles mention a name (rag/mentions.py), as ``unknown_names`` asks it: found
from the lexical index, the titles and the metadata, reading only the few articles that could
hold it. Real index over articles written for the test, real e5."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rag.index
from rag.answering.selector import unknown_names
from rag.document_store import DocumentStore, StoredDocument
from rag.embedding import E5Embedder
from rag.index import SearchIndex, load_index
from rag.question import analyse
from tests.helpers.corpora import indexed

ARTICLES = {
    "earphone.txt": (
        "星河科技发布新款翻译耳机\n2024-05-01\n作者：司马青云\n\n"
        "星河科技在杭州发布了新款翻译耳机，售价为1999元。\n"
        "刘子豪在杭州发布了新款翻译耳机。\n"
        "OpenAI的GPT-4o模型也支持实时翻译。\n"
    ),
    "server.txt": (
        "阿里云发布新一代磐久服务器\n2024-09-19\n\n"
        "阿里云在杭州云栖大会上发布了新一代磐久服务器，单机支持16卡GPU。\n"
    ),
    "concert.txt": (
        "欧阳娜娜举办Zenith音乐会\n2024-06-01\n\n他在欧阳娜娜中心演出，门票很快售罄。\n"
    ),
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Path:
    corpus, index_dir = (tmp_path_factory.mktemp(f"mentions-{n}") for n in ("corpus", "index"))
    return indexed(corpus, index_dir, ARTICLES, e5)


@pytest.fixture
def index(index_dir: Path) -> SearchIndex:
    """A fresh load each test: no article decoded yet."""
    return load_index(index_dir)


@pytest.fixture
def reads(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ids of the articles decoded from the store while the test runs."""
    decoded: list[str] = []
    read = DocumentStore._read

    def counting(store: DocumentStore, n: int) -> StoredDocument:
        decoded.append(store.ids[n])
        return read(store, n)

    monkeypatch.setattr(DocumentStore, "_read", counting)
    yield decoded


def test_a_name_that_is_a_term_of_the_passages_is_mentioned_without_reading_articles(
    index: SearchIndex, reads: list[str]
) -> None:
    assert index.lexical.document_frequency("星河") > 0  # a whole term
    assert index.mentions("星河")
    assert index.mentions("openai") and index.mentions("OPENAI")  # case aside
    assert index.mentions("gpt")  # inside the Latin term "gpt-4o"
    assert reads == []


def test_a_name_across_the_passages_terms_is_mentioned(index: SearchIndex) -> None:
    """jieba splits 刘子豪 and 欧阳娜娜 in these sentences: no term holds the name."""
    for name in ("刘子豪", "欧阳娜娜", "阳娜", "磐久服务"):
        assert not len(index.lexical.terms_containing(name)), name  # the case under test
        assert index.mentions(name), name


def test_titles_and_metadata_fields_count(index: SearchIndex) -> None:
    passages = "".join(chunk.text for chunk in index.chunks)
    for name in ("司马青云", "音乐会", "zenith", "ZENITH"):  # an author, words of a title
        assert name.lower() not in passages.lower(), name  # the case under test
        assert index.documents.fields_mention(name.lower()), name
        assert index.mentions(name), name
    assert not index.documents.fields_mention("司马青山")
    assert not index.documents.fields_mention("zenitha")


def test_absent_names_are_not_mentioned_and_no_article_is_read(
    index: SearchIndex, reads: list[str]
) -> None:
    for name in ("刘德华", "刘子华", "Zyxcorp", "gpt-5", "欧阳娜娜中心演唱"):
        assert not index.mentions(name), name
    # Whole-corpus search (decoding every article) would read all three.
    assert len(set(reads)) < len(ARTICLES)


def test_unknown_names_finds_absent_names_and_ignores_present_ones(index: SearchIndex) -> None:
    assert unknown_names(analyse("刘子豪发布的耳机售价是多少？"), index) == []
    assert unknown_names(analyse("OpenAI的模型支持翻译吗？"), index) == []
    assert unknown_names(analyse("孙小美发布的耳机售价是多少？"), index) == ["孙小美"]
    assert unknown_names(analyse("Zyxcorp的耳机售价是多少？"), index) == ["Zyxcorp"]


def test_no_corpus_wide_text_is_kept_on_the_index(index: SearchIndex) -> None:
    """The lower-cased copy of every article that ``unknown_names`` once built is gone."""
    index.mentions("刘德华")
    assert not any(isinstance(v, str) and len(v) > 1000 for v in vars(index).values())


def test_a_word_is_settled_once_per_index(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question of several parts asks again for each part's names: each word is searched
    for once per index."""
    searched: list[str] = []
    search = rag.index.mentioned

    def counting(word: str, *args: Any) -> bool:
        searched.append(word)
        return search(word, *args)

    monkeypatch.setattr(rag.index, "mentioned", counting)
    for _ in range(2):
        assert index.mentions("刘子豪") and not index.mentions("刘德华")
    assert searched == ["刘子豪", "刘德华"]
