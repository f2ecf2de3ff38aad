"""Wiring: settings -> embedder -> index -> retriever, shared by the CLI, server and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rag.embedding import Embedder, load_embedder
from rag.index import IndexConfig, SearchIndex, open_index
from rag.retrieval import Retriever
from rag.settings import Settings


def index_config(settings: Settings) -> IndexConfig:
    return IndexConfig(
        corpus_dir=settings.corpus_dir,
        index_dir=settings.index_dir,
        chunk_chars=settings.chunk_chars,
        chunk_overlap=settings.chunk_overlap,
        ann=settings.ann,
        ann_threshold=settings.ann_threshold,
        lock_timeout=settings.index_lock_timeout,
        on_damaged=settings.on_damaged_index,
    )


@dataclass
class Engine:
    """The loaded objects one process needs to retrieve (and later answer)."""

    settings: Settings
    embedder: Embedder
    index: SearchIndex
    retriever: Retriever


def load_engine(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = True,
    progress: bool = False,
    announce: Callable[[str], None] | None = None,
) -> Engine:
    """Load (building if needed) the index for ``settings``; pass ``embedder`` to share one."""
    embedder = embedder or load_embedder(settings.embedder, settings.device)
    index = open_index(
        index_config(settings), embedder, rebuild=rebuild, progress=progress, announce=announce
    )
    return engine_over(settings, embedder, index)


def engine_over(settings: Settings, embedder: Embedder, index: SearchIndex) -> Engine:
    """The engine for an index already loaded (the server's swaps, or ``load_engine``)."""
    retriever = Retriever(index, embedder, embed_slots=settings.embed_slots or None)
    return Engine(settings, embedder, index, retriever)
