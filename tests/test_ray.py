"""Ray on a real local cluster (two CPUs, one per test session): an index built by Ray workers
is the index a local build writes, incremental builds reuse vectors as before, and batch
answering across the cluster gives the local output in input order, resumes, and reports
failures without stopping. The CLI runs join the session's cluster by its address."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.batch import BatchItem, read_items
from rag.embedding import E5Embedder
from rag.errors import EmbedderError
from rag.index import IndexConfig, SearchIndex, build_index, load_index
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS, Settings

ray = pytest.importorskip("ray")

from rag.distributed.batch import run_batch_on_ray  # noqa: E402
from rag.distributed.cluster import LOCAL, ClusterError, connect, shutdown  # noqa: E402
from rag.distributed.embedder import RayEmbedder  # noqa: E402
from rag.distributed.pool import Failure, WorkerPool  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster and model loads in every worker

Run = Callable[..., subprocess.CompletedProcess]

# About the bundled articles (Alibaba Cloud's AI infrastructure, Tongyi Qianwen).
QUESTIONS = [
    "阿里云的AI基础设施包括哪些部分?",
    "通义千问是什么时候发布的?",
    "阿里云在大模型时代的核心是什么?",
    "磐久服务器支持多少GPU?",
    "飞天云操作系统有什么作用?",
    "What did Alibaba Cloud announce at the Apsara conference?",
]
SAMPLE_QUESTIONS = {
    "server": "磐久服务器单机支持多少卡GPU?",
    "downloads": "Qwen系列模型的全球下载量超过了多少?",
    "price": "通义千问主力模型最高降价多少?",
    "datacenter": "How many servers can the Ulanqab data centre hold?",
}


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One local Ray cluster with two CPUs for the whole run; its address lets a ``rag``
    subprocess join it instead of starting another."""
    connect(LOCAL, num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    shutdown()


def ray_env() -> dict[str, str]:
    """What a ``rag`` subprocess needs to join the session's cluster: the RAY_* variables
    ``ray.init`` set here (RAY_AUTH_MODE=token: the cluster wants the token in ~/.ray), which
    the session's subprocess environment may have been copied before."""
    return {k: v for k, v in os.environ.items() if k.startswith("RAY_")}


@pytest.fixture(scope="module")
def ray_index(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> SearchIndex:
    index_dir = tmp_path_factory.mktemp("ray-index")
    with RayEmbedder("e5", workers=2) as embedder:
        build_index(
            IndexConfig(BUNDLED_CORPUS, index_dir), embedder, embed_batch=embedder.call_batch
        )
    return load_index(index_dir)


def test_ray_build_writes_the_local_index(
    ray_index: SearchIndex, bundled_index: SearchIndex
) -> None:
    assert list(ray_index.chunks) == list(bundled_index.chunks)
    assert list(ray_index.sentences) == list(bundled_index.sentences)
    assert list(ray_index.chunk_sentences) == list(bundled_index.chunk_sentences)
    assert ray_index.documents == bundled_index.documents
    assert ray_index.manifest.embedder == bundled_index.manifest.embedder
    assert ray_index.manifest.embedded == bundled_index.manifest.embedded > 0
    local = np.load(bundled_index.path / "embeddings.npy")
    remote = np.load(ray_index.path / "embeddings.npy")
    np.testing.assert_allclose(remote, local, atol=1e-5)


def test_ray_index_retrieves_the_same_top_five(
    ray_index: SearchIndex, bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    ours, theirs = Retriever(ray_index, e5), Retriever(bundled_index, e5)
    for question in QUESTIONS:
        got = [(h.doc, h.start, h.end) for h in ours.retrieve(question, 5)]
        want = [(h.doc, h.start, h.end) for h in theirs.retrieve(question, 5)]
        assert got == want, question
        assert len(got) == 5


def test_ray_build_is_incremental_like_a_local_one(
    ray_address: str, e5: E5Embedder, tmp_path: Path, sample_articles: dict[str, str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    first = dict(list(sample_articles.items())[:2])
    for name, text in first.items():
        (corpus / name).write_text(text, encoding="utf-8")
    ray_config = IndexConfig(corpus, tmp_path / "ray")
    local_config = IndexConfig(corpus, tmp_path / "local")
    with RayEmbedder("e5", workers=2) as embedder:
        build = lambda: build_index(ray_config, embedder, embed_batch=embedder.call_batch)  # noqa: E731
        build_index(local_config, e5)
        assert build().reused == 0

        name, text = list(sample_articles.items())[2]
        (corpus / name).write_text(text, encoding="utf-8")
        again = build()
        local_again = build_index(local_config, e5)

    assert again.reused > 0 and again.embedded > 0
    assert (again.embedded, again.reused) == (local_again.embedded, local_again.reused)
    assert list(load_index(ray_config.index_dir).chunks) == list(
        load_index(local_config.index_dir).chunks
    )


def test_a_worker_that_cannot_load_its_embedder_fails_the_build_with_its_message(
    ray_address: str,
) -> None:
    with pytest.raises(EmbedderError, match="unknown embedder 'bogus'"):
        RayEmbedder("bogus", workers=1)


def test_pool_keeps_input_order_and_turns_a_failed_call_into_a_failure(ray_address: str) -> None:
    class Halver:
        """Halves even numbers (8 slowly), refuses odd ones. Made here, it is shipped to the
        workers by value (the tests folder need not be importable there)."""

        def ready(self) -> str:
            return "ok"

        def halve(self, n: int) -> int:
            if n == 8:
                time.sleep(1)  # the first item finishes last: the others wait for it
            if n % 2:
                raise ValueError(f"{n} is odd")
            return n // 2

    with WorkerPool(Halver, (), workers=2) as pool:
        assert pool.start() == ["ok", "ok"]
        results = list(pool.map("halve", [8, 3, 4, 10, 6, 2, 12]))

    assert results[0] == 4 and results[2:] == [2, 5, 3, 1, 6]
    assert results[1] == Failure("ValueError: 3 is odd")


def test_more_workers_than_the_cluster_can_place_is_refused_not_a_hang(ray_address: str) -> None:
    with pytest.raises(ClusterError, match="3 Ray workers need 3 CPUs; the cluster has 2"):
        RayEmbedder("e5", workers=3)
    with pytest.raises(ClusterError, match="need 1 GPUs; the cluster has 0"):
        RayEmbedder("e5", workers=1, device="cuda")


# --- batch answering ----------------------------------------------------------------------------


def lines(path: Path) -> list[dict[str, object]]:
    """Output rows without their timings (the only field that differs between runs)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row.pop("timings")
    return rows


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample questions with a cut-off line in the middle (line 3)."""
    path = tmp_path_factory.mktemp("ray-batch") / "in.jsonl"
    rows = [
        json.dumps({"id": k, "question": q}, ensure_ascii=False)
        for k, q in SAMPLE_QUESTIONS.items()
    ]
    rows.insert(2, '{"id": "broken", "question": ')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def batch_index(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the CLI runs keep the sample corpus's index (built by the first of them)."""
    return tmp_path_factory.mktemp("ray-batch-index") / "index"


@pytest.fixture(scope="module")
def local_out(batch_file: Path, batch_index: Path, sample_corpus: Path, run_rag: Run) -> Path:
    out = batch_file.with_name("local.jsonl")
    result = run_rag(
        "ask",
        "-q",
        "--corpus",
        sample_corpus,
        "--index-dir",
        batch_index,
        "--batch",
        batch_file,
        "--out",
        out,
    )
    assert result.returncode == 1, result.stderr  # the broken line
    return out


def ask_on_ray(
    run_rag: Run, address: str, corpus: Path, index: Path, batch: Path, out: Path
) -> subprocess.CompletedProcess:
    return run_rag(
        "ask",
        "-q",
        "--corpus",
        corpus,
        "--index-dir",
        index,
        "--batch",
        batch,
        "--out",
        out,
        "--ray",
        address,
        "--ray-workers",
        "2",
        env=ray_env(),
        timeout=300,
    )


def test_ray_batch_equals_the_local_batch_in_input_order(
    ray_address: str,
    batch_file: Path,
    batch_index: Path,
    sample_corpus: Path,
    local_out: Path,
    run_rag: Run,
) -> None:
    out = batch_file.with_name("ray.jsonl")
    result = ask_on_ray(run_rag, ray_address, sample_corpus, batch_index, batch_file, out)

    assert result.returncode == 1, result.stderr
    assert f"{batch_file}:3: " in result.stderr  # the broken line, by number
    assert "answered 4, already done 0, bad lines 1, failed 0" in result.stderr
    assert "Traceback" not in result.stderr
    rows = lines(out)
    assert [r["id"] for r in rows] == list(SAMPLE_QUESTIONS)
    assert rows == lines(local_out)
    assert "16卡GPU" in str(rows[0]["answer"])


def test_ray_batch_resumes_after_an_interrupted_run(
    ray_address: str,
    batch_file: Path,
    batch_index: Path,
    sample_corpus: Path,
    local_out: Path,
    run_rag: Run,
    tmp_path: Path,
) -> None:
    done = local_out.read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_text(done[0] + done[1][: len(done[1]) // 2], encoding="utf-8")  # cut mid-line

    result = ask_on_ray(run_rag, ray_address, sample_corpus, batch_index, batch_file, out)

    assert "answered 3, already done 1, bad lines 1, failed 0" in result.stderr, result.stderr
    assert out.read_text(encoding="utf-8").splitlines()[0] == done[0].rstrip("\n")
    assert lines(out) == lines(local_out)


def test_a_failed_item_is_reported_and_the_others_answered(
    ray_address: str, sample_corpus: Path, batch_index: Path, local_out: Path, tmp_path: Path
) -> None:
    settings = Settings(corpus_dir=sample_corpus, index_dir=batch_index)
    items = [BatchItem(k, q) for k, q in SAMPLE_QUESTIONS.items()]
    items.insert(1, BatchItem("blank", "   "))  # read_items would refuse it; a worker does too
    out = tmp_path / "out.jsonl"

    report = run_batch_on_ray(items, settings, None, out, workers=2, progress=False)

    assert report.errors == ["id blank: the question is empty"]
    assert report.answered == 4
    assert lines(out) == lines(local_out)


def test_ray_batch_with_everything_done_starts_no_worker(
    sample_corpus: Path, batch_index: Path, local_out: Path, batch_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    shutil.copy(local_out, out)
    items, _ = read_items(batch_file)
    settings = Settings(corpus_dir=sample_corpus, index_dir=batch_index)

    report = run_batch_on_ray(items, settings, None, out, workers=2, progress=False)

    assert (report.answered, report.skipped, report.errors) == (0, 4, [])
    assert out.read_bytes() == local_out.read_bytes()


# --- command line -------------------------------------------------------------------------------


def test_rag_index_ray_joins_a_cluster_and_writes_the_local_index(
    ray_address: str, sample_corpus: Path, tmp_path: Path, e5: E5Embedder, run_rag: Run
) -> None:
    result = run_rag(
        "index",
        "-q",
        "--corpus",
        sample_corpus,
        "--index-dir",
        tmp_path / "ray",
        "--ray",
        ray_address,
        env=ray_env(),
        timeout=300,
    )
    build_index(IndexConfig(sample_corpus, tmp_path / "local"), e5)

    assert result.returncode == 0, result.stderr
    assert "indexed 4 documents" in result.stdout
    ours, theirs = load_index(tmp_path / "ray"), load_index(tmp_path / "local")
    assert list(ours.chunks) == list(theirs.chunks)
    np.testing.assert_allclose(
        np.load(ours.path / "embeddings.npy"), np.load(theirs.path / "embeddings.npy"), atol=1e-5
    )


def test_bad_ray_options_are_one_line_errors(run_rag: Run, tmp_path: Path) -> None:
    workers = run_rag("index", "--index-dir", tmp_path, "--ray", "--ray-workers", "0")
    question = run_rag("ask", "--index-dir", tmp_path, "--ray", "local", "什么?")
    nobody = run_rag("index", "--index-dir", tmp_path, "--ray", "127.0.0.1:1", timeout=60)

    assert workers.returncode == 2
    assert workers.stderr.strip() == "rag: error: --ray-workers must be at least 1"
    assert question.returncode == 2
    assert question.stderr.strip() == "rag: error: --ray answers a --batch FILE.jsonl"
    assert nobody.returncode == 2
    assert nobody.stderr.startswith("rag: error: cannot reach the Ray cluster at '127.0.0.1:1'")
    assert len(nobody.stderr.strip().splitlines()) == 1


def test_without_ray_installed_the_flag_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rag.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # what a base install without the extra sees

    assert main(["index", "-q", "--index-dir", str(tmp_path), "--ray"]) == 2
    message = capsys.readouterr().err.strip()
    assert message == "rag: error: --ray needs the 'ray' extra: pip install 'qianwen-rag[ray]'"
