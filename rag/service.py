"""The long-lived answering service: one loaded index at a time, hot-swapped on rebuild.

Requests take ``service.answerer`` once and use that object throughout, so every answer
comes from one complete index (old or new, never a mix). A watcher thread notices when
``rag index`` publishes a new build and swaps the reference after the build is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from rag.answer import Answerer
from rag.embedding import Embedder, load_embedder
from rag.engine import Engine, index_config
from rag.index import SearchIndex, current_path, load_index, open_index
from rag.llm import ChatClient, chat_client
from rag.retrieval import Retriever
from rag.settings import Settings

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Load jieba's dictionaries and the answer-layer models now, so the first request after
    /readyz is not slow (together about two seconds)."""
    import jieba.posseg

    from rag.answering.selector import load_models
    from rag.answering.span import short_answer
    from rag.tokens import tokenize

    tokenize("预热")
    jieba.posseg.lcut("预热")
    load_models()
    short_answer("预热是什么?", "预热是准备。", 0, 6, doc="warm-up")


def _build_id(index_dir: Path) -> str | None:
    """Which build ``current`` points at (None while there is none)."""
    try:
        return os.readlink(current_path(index_dir))
    except OSError:
        return None


class Service:
    """Holds the answerer; ``start`` loads it (building if needed) and starts the watcher."""

    def __init__(
        self,
        settings: Settings,
        llm: ChatClient | None = None,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_swap = on_swap
        self.llm = llm if llm is not None else chat_client(settings)
        self.embedder: Embedder | None = None
        self._answerer: Answerer | None = None
        self._build: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.swaps = 0

    @property
    def ready(self) -> bool:
        return self._answerer is not None

    @property
    def answerer(self) -> Answerer:
        answerer = self._answerer
        if answerer is None:
            from rag.errors import IndexMissingError

            raise IndexMissingError("the index is still loading")
        return answerer

    def load(self) -> None:
        """Load the embedder and the index, building the index first when missing or stale."""
        self.embedder = self.embedder or load_embedder(self.settings.embedder, self.settings.device)
        config = index_config(self.settings)
        index = open_index(config, self.embedder, rebuild=True, progress=False)
        warm_up()
        self._install(index)

    def _install(self, index: SearchIndex) -> None:
        assert self.embedder is not None
        engine = Engine(self.settings, self.embedder, index, Retriever(index, self.embedder))
        self._answerer = Answerer(engine, self.llm)  # one atomic reference swap
        self._build = index.path.name
        log.info("index loaded", extra={"build": self._build, "chunks": len(index.chunks)})

    def start_watching(self, interval: float = 1.0) -> None:
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), name="index-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            target = _build_id(self.settings.index_dir)
            if target is None or Path(target).name == self._build:
                continue
            try:
                self._install(load_index(self.settings.index_dir))
                self.swaps += 1
                if self.on_swap is not None:
                    self.on_swap()
            except Exception as exc:  # keep serving the old index whatever went wrong
                log.warning("index swap failed", extra={"error": str(exc)})

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
