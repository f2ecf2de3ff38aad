"""The long-lived answering service: one loaded index at a time, hot-swapped on rebuild.

Requests take ``service.answerer`` once and use that object throughout, so every answer
comes from one complete index (old or new, never a mix). Builds asked for over HTTP run in
the background (:class:`rag.library.Builder`) and swap the reference as soon as they are
published; a watcher thread notices builds published by ``rag index`` in another process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from rag.answer import Answerer
from rag.corpus import Corpus, load_corpus
from rag.embedding import Embedder, load_embedder
from rag.engine import Engine, engine_over, index_config, load_engine
from rag.index import IndexConfig, build_index, current_path, index_problem, load_index
from rag.library import Builder, Library, Progress
from rag.llm import ChatClient, chat_client
from rag.manifest import Manifest
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


def _same_source(
    manifest: Manifest, config: IndexConfig, embedder: Embedder, corpus: Corpus
) -> bool:
    """Whether a build of ``corpus`` would reproduce the index ``manifest`` describes."""
    skipped = sorted((str(s.path), s.reason) for s in corpus.skipped)
    listed = sorted((s.path, s.reason) for s in manifest.skipped)
    return index_problem(manifest, config, embedder, corpus) is None and skipped == listed


def _build_id(index_dir: Path) -> str | None:
    """Which build ``current`` points at (None while there is none)."""
    try:
        return os.readlink(current_path(index_dir))
    except OSError:
        return None


class Service:
    """Holds the answerer; ``load`` loads it (building if needed), ``start_watching`` swaps.

    ``engine``, when given, is one already loaded for ``settings`` (``rag serve`` loads it in
    the foreground to show build progress): ``load`` serves it instead of reading the index and
    the embedder a second time.
    """

    def __init__(
        self,
        settings: Settings,
        llm: ChatClient | None = None,
        on_swap: Callable[[], None] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self._preloaded = engine
        self.on_swap = on_swap
        self.llm = llm if llm is not None else chat_client(settings)
        self.embedder: Embedder | None = None
        self._answerer: Answerer | None = None
        self._build: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._swap_lock = threading.Lock()
        self.swaps = 0
        self.library = Library(settings.corpus_dir, settings.max_upload_bytes)
        self.builder = Builder(self._build_now, self.reload)

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
        """Load the embedder and the index, building the index first when missing or stale
        (or serve the engine given to the constructor)."""
        engine, self._preloaded = self._preloaded, None
        if engine is None:
            engine = load_engine(self.settings, embedder=self.embedder)
        self.embedder = engine.embedder
        warm_up()
        self._install(engine)

    def _install(self, engine: Engine) -> None:
        self._answerer = Answerer(engine, self.llm)  # one atomic reference swap
        self._build = engine.index.path.name
        log.info("index served", extra={"build": self._build, "chunks": len(engine.index.chunks)})

    def _build_now(self, on_progress: Progress) -> None:
        """One incremental build of the corpus folder (unchanged text reuses its vectors);
        none at all when the folder still holds what the served index was built from (the
        same articles and the same skipped files): that build would be the same index."""
        self.embedder = self.embedder or load_embedder(self.settings.embedder, self.settings.device)
        config = index_config(self.settings)
        corpus = load_corpus(config.corpus_dir)
        served = self._answerer.engine.index.manifest if self._answerer is not None else None
        if served is not None and _same_source(served, config, self.embedder, corpus):
            log.info("index up to date: nothing to build")
            return
        build_index(config, self.embedder, corpus=corpus, on_progress=on_progress)

    def reload(self) -> bool:
        """Swap in the published build if it is not the one being served; True if swapped."""
        with self._swap_lock:
            target = _build_id(self.settings.index_dir)
            if target is None or Path(target).name == self._build:
                return False
            embedder = self.embedder
            assert embedder is not None  # set by load(), which runs before any swap
            self._install(engine_over(self.settings, embedder, load_index(self.settings.index_dir)))
            self.swaps += 1
        if self.on_swap is not None:
            self.on_swap()
        return True

    def start_watching(self, interval: float = 1.0) -> None:
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), name="index-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reload()
            except Exception as exc:  # keep serving the old index whatever went wrong
                log.warning("index swap failed", extra={"error": str(exc)})

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        # A build under way finishes (its files are written atomically either way).
        self.builder.wait(timeout=30)
