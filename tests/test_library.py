"""The knowledge base without a server: file names, atomic adds and deletes, and background
builds (one at a time, coalesced, incremental) with the real e5 embedder."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.embedding import E5Embedder
from rag.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnsupportedFileError,
)
from rag.index import IndexConfig, build_index, load_index
from rag.library import TEMP_PREFIX, Builder, Library, Upload, accepted_suffixes, safe_name
from rag.manifest import Manifest
from rag.settings import BUNDLED_CORPUS

ARTICLE = (
    "星河科技发布新款翻译耳机\n2024-05-01\n\n"
    "星河科技在杭州发布了新款翻译耳机，售价为1999元。\n"
    "该耳机支持32种语言的实时翻译，续航时间为12小时。\n"
)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("耳机.txt", "耳机.txt"),
        ("../../etc/耳机.txt", "耳机.txt"),  # only the last component: never outside the folder
        ("C:\\Users\\me\\notes.md", "notes.md"),  # what some browsers send
        ("  spaced.TXT ", "spaced.TXT"),
    ],
)
def test_safe_name_keeps_only_the_file_name(raw: str, name: str) -> None:
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (".hidden.txt", InvalidInputError),
        ("dir/.env.txt", InvalidInputError),
        ("../..", InvalidInputError),
        ("", InvalidInputError),
        ("bad\nname.txt", InvalidInputError),
        ("surrogate\udc80.txt", InvalidInputError),
        ("长" * 90 + ".txt", InvalidInputError),  # 274 bytes
        ("run.exe", UnsupportedFileError),
        ("article.txt.sh", UnsupportedFileError),
        ("noext", UnsupportedFileError),
    ],
)
def test_safe_name_refuses_unsafe_or_unsupported_names(raw: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        safe_name(raw)


def test_accepted_suffixes_come_from_the_corpus_reader() -> None:
    from rag.corpus import ARTICLE_SUFFIXES

    assert set(accepted_suffixes()) == {s.lower() for s in ARTICLE_SUFFIXES}


def test_add_writes_checked_files_and_leaves_no_temporaries(
    make_corpus: Callable[..., Path],
) -> None:
    corpus = make_corpus()
    library = Library(corpus, max_bytes=10_000)
    before = _files(corpus)
    added = library.add([Upload("耳机.txt", ARTICLE.encode())])
    assert [(a.id, a.replaced) for a in added] == [("耳机.txt", False)]
    assert (corpus / "耳机.txt").read_text(encoding="utf-8") == ARTICLE
    assert _files(corpus) == before | {"耳机.txt"}
    again = library.add([Upload("耳机.txt", (ARTICLE + "补充。\n").encode())])
    assert again[0].replaced and (corpus / "耳机.txt").read_text(encoding="utf-8").endswith(
        "补充。\n"
    )
    assert not [n for n in _files(corpus) if n.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize(
    ("uploads", "error", "words"),
    [
        ([("blank.txt", b"  \n\t\n")], InvalidInputError, "whitespace"),
        ([("empty.txt", b"")], InvalidInputError, "empty"),
        ([("ok.txt", ARTICLE.encode()), ("bad.txt", b"")], InvalidInputError, "bad.txt"),
        ([("a.txt", ARTICLE.encode()), ("A.TXT", ARTICLE.encode())], InvalidInputError, "twice"),
        ([("big.txt", ARTICLE.encode() * 50)], TooLargeError, "limit"),
        ([("x.pdf.exe", b"MZ")], UnsupportedFileError, "x.pdf.exe"),
        ([], InvalidInputError, "no file"),
    ],
)
def test_a_rejected_upload_changes_nothing(
    make_corpus: Callable[..., Path],
    uploads: list[tuple[str, bytes]],
    error: type[Exception],
    words: str,
) -> None:
    corpus = make_corpus()
    before = {p.name: p.read_bytes() for p in corpus.iterdir()}
    with pytest.raises(error, match=words):
        Library(corpus, max_bytes=2048).add([Upload(n, d) for n, d in uploads])
    assert {p.name: p.read_bytes() for p in corpus.iterdir()} == before


def test_delete_removes_only_known_article_files(make_corpus: Callable[..., Path]) -> None:
    corpus = make_corpus({**{"a.txt": ARTICLE, "sub/b.md": ARTICLE, ".secret.txt": ARTICLE}})
    (corpus / "notes.bin").write_bytes(b"x")
    library = Library(corpus, max_bytes=10_000)
    for doc_id in ("nope.txt", "../a.txt", "sub/../a.txt", ".secret.txt", "notes.bin", "sub"):
        with pytest.raises(NotFoundError):
            library.delete(doc_id)
    assert library.delete("sub/b.md") == corpus / "sub" / "b.md"
    assert not (corpus / "sub" / "b.md").exists() and (corpus / ".secret.txt").exists()
    with pytest.raises(ConflictError, match="only article"):
        library.delete("a.txt", indexed=["a.txt"])
    assert (corpus / "a.txt").exists()


def test_the_bundled_articles_are_never_changed() -> None:
    library = Library(BUNDLED_CORPUS, max_bytes=10_000)
    assert not library.editable
    before = _files(BUNDLED_CORPUS)
    with pytest.raises(ConflictError, match="RAG_CORPUS_DIR"):
        library.add([Upload("耳机.txt", ARTICLE.encode())])
    with pytest.raises(ConflictError):
        library.delete(sorted(before)[0])
    assert _files(BUNDLED_CORPUS) == before


def test_builds_coalesce_run_incrementally_and_report_progress(
    make_corpus: Callable[..., Path], tmp_path: Path, e5: E5Embedder
) -> None:
    corpus = make_corpus()
    config = IndexConfig(corpus, tmp_path / "index")
    first = build_index(config, e5)
    gate, started = threading.Event(), threading.Event()
    manifests: list[Manifest] = []
    progress: list[tuple[int, int]] = []
    swaps: list[str] = []

    def build(on_progress: Callable[[int, int], None]) -> None:
        started.set()
        gate.wait(60)

        def record(done: int, total: int) -> None:
            progress.append((done, total))
            on_progress(done, total)

        manifests.append(build_index(config, e5, on_progress=record))

    builder = Builder(build, lambda: swaps.append(load_index(config.index_dir).path.name))
    Library(corpus, 10_000).add([Upload("耳机.txt", ARTICLE.encode())])
    builder.request()
    assert started.wait(60)
    assert builder.status().state == "building"
    for _ in range(5):  # changes during a build: one follow-up build, not five
        builder.request()
    assert builder.status().pending
    gate.set()
    assert builder.wait(120)
    status = builder.status()
    assert (status.state, status.pending, status.builds, status.error) == ("idle", False, 2, None)
    assert len(manifests) == 2 and len(swaps) == 2
    added, unchanged = manifests
    # Only the new article's texts were embedded; every old text's vector was reused.
    assert added.reused == first.embedded + first.reused
    assert 0 < added.embedded < first.embedded
    assert (unchanged.embedded, unchanged.reused) == (0, added.embedded + added.reused)
    assert progress and progress[-1] == (added.embedded, added.embedded)
    assert "耳机.txt" in load_index(config.index_dir).documents


def test_a_failed_build_is_reported_and_the_builder_recovers() -> None:
    calls: list[int] = []

    def build(on_progress: Callable[[int, int], None]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise NotFoundError("no usable article")

    builder = Builder(build, lambda: None)
    builder.request()
    assert builder.wait(30)
    assert builder.status().error == "no usable article"
    builder.request()
    assert builder.wait(30)
    assert builder.status().error is None and builder.status().builds == 2


def test_rag_index_adds_and_removes_through_the_same_library(
    make_corpus: Callable[..., Path], tmp_path: Path, run_rag: Callable[..., Any]
) -> None:
    corpus = make_corpus()
    new = tmp_path / "耳机.txt"
    new.write_text(ARTICLE, encoding="utf-8")
    index = ["-q", "--corpus", corpus, "--index-dir", tmp_path / "index"]
    result = run_rag("index", *index, "--add", new, "--remove", "qwen.txt")
    assert result.returncode == 0, result.stderr
    assert "added 耳机.txt" in result.stderr and "removed qwen.txt" in result.stderr
    assert "耳机.txt: 星河科技发布新款翻译耳机" in result.stdout
    assert "qwen.txt" not in result.stdout and not (corpus / "qwen.txt").exists()

    before = _files(corpus)
    bad = tmp_path / "run.exe"
    bad.write_bytes(b"MZ")
    for args in (["--add", bad], ["--remove", "price.txt", "nope.txt"]):
        result = run_rag("index", *index, *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("rag: error:")
    assert _files(corpus) == before  # a refused change changes nothing, not even partly
