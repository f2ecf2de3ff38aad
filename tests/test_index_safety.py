"""Index safety: damaged files found by name and rebuilt (or refused), never served; one build
at a time per folder; a read-only folder refused before embedding; no temp folder left behind;
one index folder per corpus; and what ``rag serve`` tells the person who starts it."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from filelock import FileLock

import rag.checksums
import rag.index
import rag.index_check
from rag.checksums import VERIFIED, build_checksums
from rag.chunking import hard_max_chars
from rag.corpus import load_corpus
from rag.embedding import E5Embedder
from rag.errors import IndexDamagedError
from rag.index import IndexConfig, SearchIndex, build_index, load_index, open_index
from rag.index_lock import LOCK_FILE
from rag.manifest import Manifest
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS, INDEX_ROOT, Settings, default_index_dir

Run = Callable[..., subprocess.CompletedProcess]


# --- a pristine index, copied per test and damaged there --------------------------------------


@pytest.fixture(scope="module")
def pristine(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Path:
    """An index folder of the sample corpus, built once for the module; tests copy it."""
    index_dir = tmp_path_factory.mktemp("pristine") / "index"
    build_index(IndexConfig(sample_corpus, index_dir), e5)
    return index_dir


@pytest.fixture
def index_copy(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def live_build(index_dir: Path) -> Path:
    return (index_dir / "current").resolve()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def restamp(build: Path) -> None:
    """Record the files' current checksums, as a build that wrote wrong data would have."""
    manifest = Manifest.read(build / "manifest.json")
    manifest.files = build_checksums(build)
    manifest.write(build / "manifest.json")


def shift_documents(build: Path) -> None:
    """Every article's text moved by three characters: offsets now cut the wrong words."""
    path = build / "documents.txt"
    blob = path.read_bytes()
    table = np.load(build / "documents.npy")
    path.write_bytes(b"".join("【转】".encode() + blob[s:e] for s, e in table[:, :2]))


def overwrite_titles(build: Path) -> None:
    """Each article's title line overwritten in place, byte for byte the same length: the
    table still fits, only reading the article (its metadata offsets) can tell."""
    path = build / "documents.txt"
    blob = bytearray(path.read_bytes())
    for start, _ in np.load(build / "documents.npy")[:, :2]:
        line = bytes(blob[start:]).split(b"\n", 1)[0]
        blob[start : start + len(line)] = b"x" * len(line)
    path.write_bytes(bytes(blob))


def sentences_out_of_range(build: Path) -> None:
    path = build / "chunk_sentences.npy"
    members = np.load(path)
    members[0] = 10_000
    np.save(path, members)


def bad_manifest(build: Path) -> None:
    path = build / "manifest.json"
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")


# (what happens to the build, the file the error must name)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated faiss": (lambda b: truncate(b / "vectors.faiss"), "vectors.faiss"),
    "truncated npy": (lambda b: truncate(b / "embeddings.npy"), "embeddings.npy"),
    "truncated table": (lambda b: truncate(b / "chunks.npy"), "chunks.npy"),
    "truncated text": (lambda b: truncate(b / "documents.txt"), "documents.txt"),
    "truncated jsonl": (lambda b: truncate(b / "document_info.jsonl"), "document_info.jsonl"),
    "truncated bm25": (
        lambda b: truncate(next(p for p in (b / "bm25").iterdir() if p.suffix == ".npy")),
        "bm25/",
    ),
    "bad manifest JSON": (bad_manifest, "manifest.json"),
    "shifted documents.txt": (shift_documents, "documents.txt"),
    # The same faults written by a build itself, checksums and all: only the consistency
    # checks can tell.
    "shifted documents.txt, restamped": (
        lambda b: (shift_documents(b), restamp(b)),
        "documents.txt",
    ),
    "chunk_sentences out of range, restamped": (
        lambda b: (sentences_out_of_range(b), restamp(b)),
        "chunk_sentences.npy",
    ),
}


def check_quotes(index: SearchIndex, corpus: Path, e5: E5Embedder) -> None:
    """Every stored chunk and retrieved passage is the article's text at its offsets: the text
    read afresh from the file (markdown comes out rendered) and the text the reader is shown."""
    fresh = {doc.id: doc.text for doc in load_corpus(corpus).documents}
    for chunk in index.chunks:
        assert fresh[chunk.doc][chunk.start : chunk.end] == chunk.text
        assert index.documents[chunk.doc].text == fresh[chunk.doc]
    for question in ["Qwen系列模型的下载量是多少？", "How many servers can the data centre hold?"]:
        for hit in Retriever(index, e5).retrieve(question, 5):
            assert fresh[hit.doc][hit.start : hit.end] == hit.text


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_is_named_in_one_line_then_refused_or_rebuilt(
    damage: str, index_copy: Path, sample_corpus: Path, e5: E5Embedder
) -> None:
    harm, culprit = DAMAGE[damage]
    damaged_build = live_build(index_copy)
    harm(damaged_build)

    with pytest.raises(IndexDamagedError) as caught:
        load_index(index_copy)
    message = caught.value.message
    assert "\n" not in message
    assert re.search(rf"damaged index file \S*{re.escape(culprit)}", message), message
    assert str(damaged_build) in message

    config = IndexConfig(sample_corpus, index_copy, on_damaged="fail")
    with pytest.raises(IndexDamagedError):
        open_index(config, e5)
    with pytest.raises(IndexDamagedError):
        open_index(IndexConfig(sample_corpus, index_copy), e5, rebuild=False)
    assert live_build(index_copy) == damaged_build, "refusing must not touch the index"

    rebuilt = open_index(IndexConfig(sample_corpus, index_copy), e5)

    assert rebuilt.path != damaged_build
    check_quotes(rebuilt, sample_corpus, e5)
    assert not list((index_copy / "builds").glob(".tmp-*"))


def test_damaged_vectors_are_not_reused_by_the_rebuild(
    index_copy: Path, sample_corpus: Path, e5: E5Embedder
) -> None:
    """Flipped bytes keep the file's size and shape: only the checksum can tell, and a
    rebuild must embed afresh instead of copying the wrong vectors."""
    path = live_build(index_copy) / "embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-100:] = bytes(100)
    path.write_bytes(bytes(data))

    manifest = build_index(IndexConfig(sample_corpus, index_copy), e5)

    assert manifest.reused == 0
    assert manifest.embedded == manifest.chunk_count  # builds embed chunks only


def test_the_tables_are_checked_across_blocks_of_rows(
    index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole a row at a time; a fault in the last block is found and placed."""
    monkeypatch.setattr(rag.index_check, "BLOCK", 1)
    build = live_build(index_copy)
    chunks = len(load_index(index_copy).chunks)
    assert chunks > 2
    members = np.load(build / "chunk_sentences.npy")
    members[-1] = 10_000
    np.save(build / "chunk_sentences.npy", members)
    restamp(build)

    with pytest.raises(IndexDamagedError) as caught:
        load_index(index_copy)

    assert f"chunk {chunks - 1} lists sentence 10000" in caught.value.message


def test_an_article_damaged_in_place_is_refused_when_read_or_verified(
    index_copy: Path, e5: E5Embedder
) -> None:
    """Same-length damage the checksums were updated for passes the load-time table checks
    (articles are not decoded at load); reading the article finds it, and so does
    ``verify=True``. The other articles still serve."""
    build = live_build(index_copy)
    overwrite_titles(build)
    restamp(build)

    with pytest.raises(IndexDamagedError) as caught:
        load_index(index_copy, verify=True)
    assert "is off its text" in caught.value.message
    index = load_index(index_copy)
    with pytest.raises(IndexDamagedError) as caught:
        index.documents[next(iter(index.documents))]
    assert f"damaged index file {build}/document_info.jsonl: metadata of " in caught.value.message
    assert "\n" not in caught.value.message


def counting_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files hashed from now on; stats count as settled at once."""
    hashed: list[str] = []
    real = rag.checksums.file_sha256

    def spy(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(rag.checksums, "file_sha256", spy)
    monkeypatch.setattr(rag.checksums, "RACY_NS", 0)
    return hashed


def test_a_verified_file_is_not_hashed_again_until_its_stat_changes(
    index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = counting_hashes(monkeypatch)
    build = live_build(index_copy)
    listed = set(Manifest.read(build / "manifest.json").files or {})

    load_index(index_copy)  # a copy: new inodes, so every file is hashed and remembered
    assert {Path(n).name for n in listed} == set(hashed)
    assert set(json.loads((build / VERIFIED).read_text(encoding="utf-8"))) == listed
    hashed.clear()
    load_index(index_copy)
    assert hashed == []
    load_index(index_copy, verify=True)
    assert len(hashed) == len(listed)


@pytest.mark.parametrize("restamped", [False, True])
def test_damage_made_after_a_verified_load_is_still_found(
    restamped: bool, index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, same shape, written after the stats were remembered: the ctime moves."""
    hashed = counting_hashes(monkeypatch)
    build = live_build(index_copy)
    load_index(index_copy)
    hashed.clear()
    path = build / "embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-100:] = bytes(100)
    path.write_bytes(bytes(data))
    if restamped:  # the manifest says the new content is right: the stats must not vouch
        sentences_out_of_range(build)  # ... and the consistency checks must still run
        restamp(build)

    with pytest.raises(IndexDamagedError) as caught:
        load_index(index_copy)

    culprit = "chunk_sentences.npy" if restamped else "embeddings.npy"
    assert f"damaged index file {build / culprit}" in caught.value.message
    assert restamped or "embeddings.npy" in hashed


@pytest.mark.slow
def test_rag_index_verify_hashes_what_the_stat_cache_vouches_for(
    index_copy: Path, sample_corpus: Path, run_rag: Run
) -> None:
    """Bit rot keeps a file's stats: the cache then vouches for it, and only --verify looks."""
    build = live_build(index_copy)
    where = ["--corpus", sample_corpus, "--index-dir", index_copy]
    assert run_rag("index", "--verify", *where).returncode == 0
    path = build / "embeddings.npy"
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    data = bytearray(path.read_bytes())
    data[-100:] = bytes(100)
    path.write_bytes(bytes(data))
    st = path.stat()  # the stat record says this file was hashed as it is and was good
    record = {
        "embeddings.npy": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, good]
    }
    (build / VERIFIED).write_text(json.dumps(record), encoding="utf-8")
    load_index(index_copy)  # the cache vouches: not hashed

    checked = run_rag("index", "--verify", *where)

    assert checked.returncode == 2, checked.stderr
    assert len(checked.stderr.splitlines()) == 1, checked.stderr
    assert f"damaged index file {path}" in checked.stderr


def test_a_garbled_stat_record_means_hashing_everything(
    index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = counting_hashes(monkeypatch)
    build = live_build(index_copy)
    (build / VERIFIED).write_text("{not json", encoding="utf-8")

    load_index(index_copy)

    assert "embeddings.npy" in hashed
    assert "embeddings.npy" in json.loads((build / VERIFIED).read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated faiss", "shifted documents.txt, restamped"])
def test_the_cli_reports_damage_in_one_line_or_rebuilds(
    damage: str, index_copy: Path, sample_corpus: Path, run_rag: Run
) -> None:
    DAMAGE[damage][0](live_build(index_copy))
    where = ["--corpus", sample_corpus, "--index-dir", index_copy, "-q"]

    refused = run_rag(
        "search", "Qwen系列模型的下载量是多少？", *where, env={"RAG_ON_DAMAGED_INDEX": "fail"}
    )
    served = run_rag("search", "Qwen系列模型的下载量是多少？", "--json", *where)

    assert refused.returncode == 2
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("rag: error: damaged index file ")
    assert DAMAGE[damage][1] in refused.stderr
    assert served.returncode == 0, served.stderr
    assert "Traceback" not in served.stderr
    hits = json.loads(served.stdout)
    assert hits and hits[0]["doc"] == "qwen.txt"
    fresh = {doc.id: doc.text for doc in load_corpus(sample_corpus).documents}
    for hit in hits:
        assert fresh[hit["doc"]][hit["start"] : hit["end"]] == hit["text"]


# --- one build at a time ----------------------------------------------------------------------


def index_command(corpus: Path, index_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rag",
        "index",
        "-q",
        "--corpus",
        str(corpus),
        "--index-dir",
        str(index_dir),
    ]


@pytest.mark.slow
def test_a_second_build_waits_for_the_lock_then_runs(
    index_copy: Path, sample_corpus: Path, rag_env: dict[str, str], tmp_path: Path
) -> None:
    before = live_build(index_copy)
    log = tmp_path / "index.log"
    with FileLock(index_copy / LOCK_FILE), log.open("w") as stderr:
        proc = subprocess.Popen(
            index_command(sample_corpus, index_copy),
            cwd=tmp_path,
            env=rag_env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while "waiting for it to finish" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "no waiting message"
                time.sleep(0.05)
            # While we hold the lock it builds nothing.
            assert not list((index_copy / "builds").glob(".tmp-*"))
            assert live_build(index_copy) == before
        except BaseException:
            proc.kill()
            raise
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == 0, log.read_text(errors="replace")
    assert out.startswith("indexed 4 documents")
    assert "another build of this index is running" in log.read_text()
    assert live_build(index_copy) != before


@pytest.mark.slow
def test_a_build_gives_up_after_the_lock_timeout_with_one_line(
    index_copy: Path, sample_corpus: Path, run_rag: Run
) -> None:
    before = live_build(index_copy)
    with FileLock(index_copy / LOCK_FILE):
        result = run_rag(
            *index_command(sample_corpus, index_copy)[3:], env={"RAG_INDEX_LOCK_TIMEOUT": "1"}
        )

    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("rag: error:")]
    assert errors == [
        f"rag: error: another build of {index_copy} was still running after 1s; try again "
        "when it is done (RAG_INDEX_LOCK_TIMEOUT sets the wait)"
    ]
    assert "Traceback" not in result.stderr
    assert live_build(index_copy) == before


@pytest.mark.slow
def test_two_builds_at_once_both_succeed_and_leave_one_whole_index(
    make_corpus: Callable[..., Path], rag_env: dict[str, str], tmp_path: Path, e5: E5Embedder
) -> None:
    corpus = make_corpus()
    index_dir = tmp_path / "index"
    procs = [
        subprocess.Popen(
            index_command(corpus, index_dir),
            cwd=tmp_path,
            env=rag_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    reports = sorted(out for out, _ in results)
    # One embedded everything; the other waited, then reused all of it.
    assert re.search(r"\(0 embedded, \d+ reused\)", reports[0]), reports
    index = load_index(index_dir)
    check_quotes(index, corpus, e5)
    builds = {p.name for p in (index_dir / "builds").iterdir()}
    assert index.path.name in builds and len(builds) == 2
    assert not any(name.startswith(".tmp-") for name in builds)


# --- read-only folders, failed builds, large builds, long lines -------------------------------


def read_only(folder: Path, *command: str | Path) -> list[str]:
    """``command`` run with ``folder`` mounted read-only (a private mount namespace)."""
    args = " ".join(f"'{a}'" for a in map(str, command))
    script = (
        f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && exec {args}"
    )
    return ["unshare", "-Urm", "sh", "-c", script]


@pytest.fixture(scope="module")
def can_mount_read_only(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("ro-probe")
    probe = subprocess.run(read_only(folder, "touch", folder / "x"), capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot mount a folder read-only here: {probe.stderr.strip()}")


@pytest.mark.slow
@pytest.mark.usefixtures("can_mount_read_only")
@pytest.mark.parametrize("command", ["index", "search"])
def test_a_read_only_index_folder_is_refused_before_any_embedding(
    command: str,
    index_copy: Path,
    make_corpus: Callable[..., Path],
    sample_articles: dict[str, str],
    rag_env: dict[str, str],
    tmp_path: Path,
) -> None:
    corpus = make_corpus({**sample_articles, "new.txt": "新文章\n\n一篇新加入语料的文章。\n"})
    args = [command, *(["Qwen"] if command == "search" else []), "--corpus", corpus]
    rag_command = [sys.executable, "-m", "rag", *args, "--index-dir", index_copy]

    result = subprocess.run(
        read_only(index_copy, *rag_command),
        cwd=tmp_path,
        env=rag_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"rag: error: cannot write the index folder {index_copy} (Read-only file system); "
        "make it writable or set RAG_INDEX_DIR to a writable folder"
    )
    assert "embedding" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("can_mount_read_only")
def test_an_up_to_date_index_serves_from_a_read_only_folder(
    index_copy: Path, sample_corpus: Path, rag_env: dict[str, str], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "rag", "search", "Qwen2.5", "--json", "-q"]
    command += ["--corpus", str(sample_corpus), "--index-dir", str(index_copy)]

    result = subprocess.run(
        read_only(index_copy, *command), cwd=tmp_path, env=rag_env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["doc"] == "qwen.txt"


def _long_article(sentences: int) -> str:
    body = "".join(
        f"第{n}号机房位于乌兰察布，安装了{n * 37}台服务器，全年平均气温约为{n % 9 + 1}摄氏度。"
        for n in range(1, sentences + 1)
    )
    return f"乌兰察布机房清单\n\n{body}\n"


@pytest.mark.slow
def test_an_interrupted_build_removes_its_temp_folder_and_a_dead_ones(
    index_copy: Path, sample_corpus: Path, rag_env: dict[str, str], tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    (corpus / "rooms.txt").write_text(_long_article(40), encoding="utf-8")
    before = live_build(index_copy)
    dead = index_copy / "builds" / ".tmp-999999-20200101T000000-deadbeef"
    dead.mkdir()
    log = tmp_path / "index.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            index_command(corpus, index_copy),
            cwd=tmp_path,
            env=rag_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while not list((index_copy / "builds").glob(f".tmp-{proc.pid}-*")):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not dead.exists(), "a dead build's folder goes before the new build starts"
        proc.send_signal(signal.SIGINT)  # Ctrl+C: the build fails part-way
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 130, log.read_text(errors="replace")
    assert "rag: interrupted" in log.read_text()
    assert not list((index_copy / "builds").glob(".tmp-*"))
    assert live_build(index_copy) == before


def test_a_large_build_is_announced_with_an_estimate(
    make_corpus: Callable[..., Path],
    tmp_path: Path,
    e5: E5Embedder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The threshold is lowered so the sample corpus counts as large; the estimate is the
    number of texts to embed at the nominal rate."""
    monkeypatch.setattr(rag.index, "LARGE_BUILD_SECONDS", 0.1)
    config = IndexConfig(make_corpus(), tmp_path / "index")
    rag_logger = logging.getLogger("rag")
    monkeypatch.setattr(rag_logger, "propagate", True)

    with caplog.at_level(logging.INFO, logger="rag"):
        manifest = build_index(config, e5)
        warnings = [r for r in caplog.records if r.message.startswith("large index build")]
        caplog.clear()
        build_index(config, e5)  # nothing to embed: nothing to announce
        again = [r for r in caplog.records if r.message.startswith("large index build")]

    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert f"{manifest.embedded} texts to embed" in warnings[0].message
    assert warnings[0].estimated_seconds == round(manifest.embedded / 15)  # type: ignore[attr-defined]
    assert again == []


def test_a_long_line_without_punctuation_is_stored_in_bounded_exact_chunks(
    make_corpus: Callable[..., Path], tmp_path: Path, e5: E5Embedder
) -> None:
    line = "".join(f"第{n}台服务器编号{n * 7}位于机房" for n in range(120))  # no punctuation
    corpus = make_corpus({"line.txt": f"一行到底\n\n{line}\n"})

    build_index(IndexConfig(corpus, tmp_path / "index", chunk_chars=200), e5)

    index = load_index(tmp_path / "index")
    assert len(line) > 4 * hard_max_chars(200)
    assert len(index.chunks) >= len(line) // hard_max_chars(200)
    assert all(len(c.text) <= hard_max_chars(200) for c in index.chunks)
    check_quotes(index, corpus, e5)
    assert all(
        len(index.sentence_text(r)) <= hard_max_chars(200) for r in range(len(index.sentences))
    )


# --- one index folder per corpus --------------------------------------------------------------


def test_each_corpus_gets_its_own_default_index_folder(
    tmp_path: Path, isolated_settings: Callable[..., Settings]
) -> None:
    first, second = tmp_path / "news", tmp_path / "其他"
    first.mkdir(), second.mkdir()
    (tmp_path / "link").symlink_to(first)

    assert default_index_dir(BUNDLED_CORPUS) == INDEX_ROOT == Path("index")
    assert isolated_settings().index_dir == Path("index")
    assert re.fullmatch(r"index/news-[0-9a-f]{8}", default_index_dir(first).as_posix())
    assert re.fullmatch(r"index/corpus-[0-9a-f]{8}", default_index_dir(second).as_posix())
    assert default_index_dir(tmp_path / "link") == default_index_dir(first)
    assert default_index_dir(first) != default_index_dir(tmp_path / "elsewhere" / "news")
    assert Settings(corpus_dir=first).index_dir == default_index_dir(first)
    assert Settings(corpus_dir=first, index_dir=tmp_path / "mine").index_dir == tmp_path / "mine"


@pytest.mark.slow
def test_switching_corpus_folders_does_not_rebuild_what_was_built(
    make_corpus: Callable[..., Path], sample_articles: dict[str, str], run_rag: Run
) -> None:
    first = make_corpus(name="first")
    second = make_corpus({"qwen.txt": sample_articles["qwen.txt"]}, name="second")

    runs = [run_rag("index", "-q", "--corpus", corpus) for corpus in (first, second, first)]

    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    lines = [r.stdout.splitlines()[0] for r in runs]
    assert lines[0].endswith(f"-> {default_index_dir(first)}")
    assert lines[1].endswith(f"-> {default_index_dir(second)}")
    assert re.search(r"\(0 embedded, \d+ reused\)", lines[2]), lines[2]


# --- rag serve says what it does ---------------------------------------------------------------


@pytest.fixture
def serve(rag_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``serve(*args, env=...)`` starts ``rag serve --port 0`` with stderr to a log file."""
    procs: list[subprocess.Popen] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (tmp_path / f"serve-{len(procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--port", "0", *map(str, args)],
            cwd=tmp_path,
            env={**rag_env, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        proc.log = Path(log.name)  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_line(proc: subprocess.Popen, pattern: str) -> re.Match[str]:
    log: Path = proc.log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 240
    while True:
        text = log.read_text(errors="replace")
        found = re.search(pattern, text)
        if found:
            return found
        assert proc.poll() is None, f"serve ended with {proc.returncode}:\n{text[-3000:]}"
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.1)


@pytest.mark.slow
def test_serve_builds_with_progress_then_says_where_it_listens(
    serve: Callable[..., subprocess.Popen], make_corpus: Callable[..., Path], tmp_path: Path
) -> None:
    corpus = make_corpus()
    index_dir = tmp_path / "index"

    proc = serve("--corpus", corpus, "--index-dir", index_dir)

    found = wait_for_line(
        proc, r"rag: serving 4 articles \((\d+) chunks\) at http://127\.0\.0\.1:(\d+)"
    )
    chunks, port = int(found.group(1)), int(found.group(2))
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["chunks"] == chunks == len(load_index(index_dir).chunks)
    log = proc.log.read_text()  # type: ignore[attr-defined]
    assert f"rag: building the index of {corpus} in {index_dir} (no index yet)" in log
    assert re.search(r"embedding: 100%.*\d+/\d+", log), "no progress shown"
    assert log.index("building the index") < log.index("embedding") < log.index("rag: serving")
    assert "warning" not in log, "a normal first build is no warning"


INDEX_READ = r" info rag\.index: index read build=\"(\S+)\" chunks=(\d+)"


@pytest.mark.slow
def test_one_worker_serves_the_index_it_read_at_start_without_reading_it_again(
    serve: Callable[..., subprocess.Popen], index_copy: Path, sample_corpus: Path
) -> None:
    """``rag serve`` reads the index in the foreground (a first start shows build progress)
    and hands it to the app: a second read in the server would double the start time."""
    proc = serve(
        "--corpus", sample_corpus, "--index-dir", index_copy, "-q", env={"RAG_LOG_LEVEL": "INFO"}
    )

    found = wait_for_line(proc, r"rag: serving 4 articles \((\d+) chunks\) at \S+:(\d+)")
    chunks, port = found.group(1), int(found.group(2))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        ready = client.get("/readyz")
        answer = client.post("/api/ask", json={"question": "新服务器单机支持多少卡GPU？"})
    assert ready.status_code == 200
    assert ready.json()["chunks"] == int(chunks)
    assert answer.status_code == 200 and answer.json()["citations"]
    log = proc.log.read_text()  # type: ignore[attr-defined]
    assert re.findall(INDEX_READ, log) == [(live_build(index_copy).name, chunks)], log


@pytest.mark.slow
def test_several_workers_each_read_the_index_once(
    serve: Callable[..., subprocess.Popen], index_copy: Path, sample_corpus: Path
) -> None:
    """Workers are separate processes: each reads the index the first process checked."""
    with socket.socket() as probe:  # workers announce the port asked for: 0 would say nothing
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = serve(
        "--corpus",
        sample_corpus,
        "--index-dir",
        index_copy,
        "--workers",
        "2",
        "--port",
        str(port),
        "-q",
        env={"RAG_LOG_LEVEL": "INFO"},
    )

    wait_for_line(proc, rf"rag: serving 4 articles .* at \S+:{port} with 2 workers")
    wait_for_line(proc, r"(?s)(rag\.api\.app: ready .*){2}")
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=60)
    assert ready.status_code == 200
    log = proc.log.read_text()  # type: ignore[attr-defined]
    reads = re.findall(INDEX_READ, log)
    assert reads == [(live_build(index_copy).name, str(ready.json()["chunks"]))] * 3, log


@pytest.mark.slow
def test_a_first_build_is_logged_at_info_and_a_damaged_one_at_warning(
    index_copy: Path, sample_corpus: Path, tmp_path: Path, run_rag: Run
) -> None:
    where = ["-q", "--corpus", sample_corpus]
    fresh = run_rag(
        "--log-level", "INFO", "search", "Qwen", *where, "--index-dir", tmp_path / "new"
    )
    truncate(live_build(index_copy) / "vectors.faiss")
    damaged = run_rag("search", "Qwen", *where, "--index-dir", index_copy)

    assert fresh.returncode == damaged.returncode == 0
    assert re.search(r" info rag\.index: building index reason=\"no index yet\"", fresh.stderr)
    assert " warning rag.index: building index" not in fresh.stderr
    assert re.search(
        r" warning rag\.index: building index reason=\"damaged index file \S+vectors\.faiss",
        damaged.stderr,
    )


@pytest.mark.slow
def test_serve_refuses_a_damaged_index_in_one_line_when_told_to(
    index_copy: Path, sample_corpus: Path, run_rag: Run
) -> None:
    truncate(live_build(index_copy) / "embeddings.npy")

    result = run_rag(
        "serve",
        "--port",
        "0",
        "--corpus",
        sample_corpus,
        "--index-dir",
        index_copy,
        env={"RAG_ON_DAMAGED_INDEX": "fail"},
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"rag: error: damaged index file {live_build(index_copy)}/embeddings.npy: checksum "
        "mismatch (truncated or changed after the build); rebuild it with 'rag index'"
    ]


@pytest.mark.slow
def test_serve_rebuilds_a_damaged_index_and_quotes_the_articles_exactly(
    serve: Callable[..., subprocess.Popen], index_copy: Path, sample_corpus: Path
) -> None:
    """Shifted article text that the checksums were updated for: only the consistency check
    catches it, and without it every quote would be cut three characters off."""
    damaged_build = live_build(index_copy)
    DAMAGE["shifted documents.txt, restamped"][0](damaged_build)

    proc = serve("--corpus", sample_corpus, "--index-dir", index_copy, "-q")

    port = int(wait_for_line(proc, r"rag: serving 4 articles \(\d+ chunks\) at \S+:(\d+)")[1])
    log = proc.log.read_text()  # type: ignore[attr-defined]
    assert f"(damaged index file {damaged_build}/documents.txt: " in log
    assert live_build(index_copy) != damaged_build
    quotes = 0
    fresh = {doc.id: doc.text for doc in load_corpus(sample_corpus).documents}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for question in ["Qwen系列模型的全球下载量超过多少？", "新服务器单机支持多少卡GPU？"]:
            answer = client.post("/api/ask", json={"question": question}).json()
            for citation in answer["citations"]:
                text = fresh[citation["doc"]]
                assert text[citation["start"] : citation["end"]] == citation["quote"]
                quotes += 1
    assert quotes >= 2


@pytest.mark.slow
@pytest.mark.usefixtures("can_mount_read_only")
@pytest.mark.parametrize("size", ["12k", "48k"])
def test_a_full_disk_fails_the_build_in_one_line_and_leaves_no_temp_folder(
    size: str, sample_corpus: Path, rag_env: dict[str, str], tmp_path: Path
) -> None:
    """The index folder is a small tmpfs: the lock and the temp folder fit, the vectors do
    not (FAISS and NumPy report a full disk differently). The listing runs inside the same
    mount namespace, before the tmpfs goes away."""
    folder = tmp_path / "small"
    folder.mkdir()
    rag_command = (
        f"'{sys.executable}' -m rag index -q --corpus '{sample_corpus}' --index-dir '{folder}'"
    )
    script = (
        f"mount -t tmpfs -o size={size} tmpfs '{folder}' && {rag_command}; "
        f"echo exit=$?; ls -A '{folder}' '{folder}/builds'"
    )

    result = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script],
        cwd=tmp_path,
        env=rag_env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert "exit=2" in result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("rag: error:")]
    assert len(errors) == 1, result.stderr
    assert re.fullmatch(
        rf"rag: error: the new build could not be written to {re.escape(str(folder))}/builds "
        r"\((No space left on device|.*is the disk full\?)\); "
        "the index was left as it was",
        errors[0],
    )
    assert "Traceback" not in result.stderr
    listing = result.stdout.split("exit=2", 1)[1]
    assert ".tmp-" not in listing and "current" not in listing
