"""A small corpus of articles written for a test, indexed for real and ready to answer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rag.answer import Answerer
from rag.embedding import E5Embedder
from rag.engine import load_engine
from rag.settings import Settings


def answerer_over(folder: Path, articles: Mapping[str, str], embedder: E5Embedder) -> Answerer:
    """Write ``articles`` (file name → text) into ``folder``, index them there with the real
    embedder, and answer from that index."""
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=folder, index_dir=folder / "idx")
    return Answerer(load_engine(settings, embedder=embedder))
