"""A small corpus of articles written for a test, indexed for real and ready to answer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rag.answer import Answerer
from rag.embedding import E5Embedder
from rag.engine import load_engine
from rag.index import IndexConfig, build_index
from rag.settings import Settings


def write_articles(folder: Path, articles: Mapping[str, str]) -> None:
    """Write ``articles`` (file name → text) into ``folder`` as UTF-8 files."""
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")


def indexed(
    corpus: Path, index_dir: Path, articles: Mapping[str, str], embedder: E5Embedder
) -> Path:
    """Write ``articles`` into ``corpus`` and build their index in ``index_dir`` (returned)."""
    write_articles(corpus, articles)
    build_index(IndexConfig(corpus, index_dir), embedder)
    return index_dir


def answerer_over(folder: Path, articles: Mapping[str, str], embedder: E5Embedder) -> Answerer:
    """Write ``articles`` (file name → text) into ``folder``, index them there with the real
    embedder, and answer from that index."""
    write_articles(folder, articles)
    settings = Settings(corpus_dir=folder, index_dir=folder / "idx")
    return Answerer(load_engine(settings, embedder=embedder))
