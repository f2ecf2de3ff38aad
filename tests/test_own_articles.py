"""The "your own articles" scenario through the real index and the extractive answerer: a folder
with UTF-8 and GBK text, Markdown with front matter, a web page, a PDF and a Word file, next to
an empty file, a symbolic link leading out of the folder and a file whose name is not UTF-8.

Six articles are indexed, each question is answered with a citation into the text the reader
is shown, and the three bad files are reported as skipped with their reasons."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.answer import Answerer
from rag.citations import check_answer
from rag.corpus import ReadOptions, load_corpus
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import IndexConfig, SearchIndex, build_index, load_index
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.article_files import (
    GBK_TEXT,
    PANDA_HTML,
    TEA_MARKDOWN,
    UTF8_TEXT,
    docx_bytes,
    pdf_bytes,
)

# (question, the article that must answer, words the cited quote must hold)
QUESTIONS = [
    ("天府绿道新增的环湖骑行路线有多长？", "greenway.txt", "四十二公里"),
    ("熊猫邮局的新明信片售价是多少？", "postcards-gbk.txt", "六十元"),
    ("蒙顶山首批茶青的收购价是多少？", "tea.md", "八百元"),
    ("双胞胎幼崽每天称重几次？", "panda.html", "三次"),
    ("川剧变脸今年的巡演共安排了多少场？", "opera.pdf", "四十场"),
    ("火锅展厅展出了多少件老火锅器具？", "hotpot.docx", "三百件"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("own-articles")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "greenway.txt").write_text(UTF8_TEXT, encoding="utf-8")
    (corpus / "postcards-gbk.txt").write_bytes(GBK_TEXT.encode("gbk"))
    (corpus / "tea.md").write_text(TEA_MARKDOWN, encoding="utf-8")
    (corpus / "panda.html").write_text(PANDA_HTML, encoding="utf-8")
    (corpus / "opera.pdf").write_bytes(pdf_bytes())
    (corpus / "hotpot.docx").write_bytes(docx_bytes())
    (corpus / "empty.txt").write_bytes(b"")
    secret = root / "secret.txt"
    secret.write_text("密码文件\n\n根用户的密码是一二三四五六。\n", encoding="utf-8")
    (corpus / "passwd.txt").symlink_to(secret)
    (corpus / os.fsdecode(b"caf\xe9.txt")).write_text("标题\n\n正文。\n", encoding="utf-8")
    return corpus


@pytest.fixture(scope="module")
def index(folder: Path, tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> SearchIndex:
    index_dir = tmp_path_factory.mktemp("own-index")
    corpus = load_corpus(folder, ReadOptions())
    build_index(IndexConfig(folder, index_dir), e5, corpus=corpus)
    return load_index(index_dir)


@pytest.fixture(scope="module")
def answerer(index: SearchIndex, e5: E5Embedder) -> Answerer:
    return Answerer(Engine(Settings.model_construct(), e5, index, Retriever(index, e5)))


def test_six_articles_indexed_with_format_and_encoding(index: SearchIndex) -> None:
    found = {d.id: (d.format, d.encoding) for d in index.manifest.documents}
    assert found == {
        "greenway.txt": ("text", "utf-8"),
        "postcards-gbk.txt": ("text", "gb18030"),
        "tea.md": ("markdown", "utf-8"),
        "panda.html": ("html", "utf-8"),
        "opera.pdf": ("pdf", None),
        "hotpot.docx": ("docx", None),
    }
    assert all(d.chunks >= 1 for d in index.manifest.documents)
    rows = [json.loads(line) for line in (index.path / "document_info.jsonl").open("rb")]
    assert {row["id"]: row["format"] for row in rows}["opera.pdf"] == "pdf"
    assert index.documents["opera.pdf"].pages[0] == 0 < index.documents["opera.pdf"].pages[1]


def test_bad_files_are_listed_as_skipped(index: SearchIndex) -> None:
    reasons = {Path(s.path).name: s.reason for s in index.manifest.skipped}
    assert reasons == {
        "empty.txt": "is empty",
        "passwd.txt": "is a symbolic link to a file outside the corpus folder",
        "caf\\xe9.txt": "file name is not valid UTF-8; rename the file",
    }
    # The linked file reached neither the stored texts nor the chunks.
    assert not any("密码" in d.text for d in index.documents.values())
    assert not any("密码" in c.text for c in index.chunks)


def test_titles_and_metadata_are_cited_exactly(index: SearchIndex) -> None:
    titles = {doc_id: d.title for doc_id, d in index.documents.items()}
    assert titles["panda.html"] == "大熊猫双胞胎首次亮相"
    assert titles["tea.md"] == "蒙顶山春茶开采"
    assert titles["opera.pdf"] == "川剧变脸进校园"
    assert titles["hotpot.docx"] == "火锅博物馆开馆"
    assert titles["postcards-gbk.txt"] == "熊猫邮局推出新明信片"
    for doc in index.documents.values():
        for field in doc.meta:
            assert doc.text[field.start : field.end] == field.value
    panda = {(f.name, f.value) for f in index.documents["panda.html"].meta}
    assert {("date", "2025-08-15"), ("source", "成都晚报"), ("author", "李四")} <= panda


@pytest.mark.parametrize(("question", "doc_id", "words"), QUESTIONS, ids=[q[1] for q in QUESTIONS])
def test_each_article_answers_with_an_exact_citation(
    answerer: Answerer, index: SearchIndex, question: str, doc_id: str, words: str
) -> None:
    answer = answerer.answer(question, mode="extractive")
    assert answer.outcome == "answered", answer.answer
    assert check_answer(answer, index) == []
    cited = [c for c in answer.citations if c.doc == doc_id and words in c.quote]
    assert cited, [(c.doc, c.quote) for c in answer.citations]
    citation = cited[0]
    text = index.documents[doc_id].text
    assert text[citation.start : citation.end] == citation.quote
    # What is quoted is what the reader sees: no markup, no bullets.
    assert not citation.quote.startswith(("-", "*", "#", "<"))
    assert "**" not in citation.quote and "<" not in citation.quote
    assert citation.page == (2 if doc_id == "opera.pdf" else None)


@pytest.mark.parametrize(
    ("question", "doc_id", "value"),
    [
        ("大熊猫双胞胎首次亮相这篇文章的作者是谁？", "panda.html", "李四"),
        ("蒙顶山春茶开采这篇文章的来源是哪家媒体？", "tea.md", "雅安日报"),
        ("火锅博物馆开馆这篇文章的作者是谁？", "hotpot.docx", "赵六"),
    ],
)
def test_metadata_from_outside_the_text_is_answered_and_cited(
    answerer: Answerer, index: SearchIndex, question: str, doc_id: str, value: str
) -> None:
    """HTML <meta>, front matter and Word properties became header lines: cited like text."""
    answer = answerer.answer(question, mode="extractive")
    assert check_answer(answer, index) == []
    cited = [c for c in answer.citations if c.doc == doc_id and value in c.quote]
    assert cited, (answer.answer, [(c.doc, c.quote) for c in answer.citations])
