"""Offline batch answering on a Ray cluster: ``rag ask --batch FILE --out FILE --ray``.

Same contract as the local :func:`rag.batch.run_batch`: ids already in ``out`` are skipped, the
answers are appended in input order as they come in (so an interrupted run resumes), and an item
that fails is reported without stopping the others. Each worker loads the index and the answer
layer once; the index folder must be readable at the same path on every node.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rag.batch import BatchItem, BatchReport, answer_line, output, remaining
from rag.distributed.pool import Failure, WorkerPool
from rag.errors import RagError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answer import Mode

log = logging.getLogger(__name__)


class AnswerWorker:
    """One Ray actor: loads the engine (embedder + index) and the answerer once."""

    def __init__(self, settings: Settings, mode: Mode | None) -> None:
        from rag.answer import Answerer
        from rag.engine import load_engine
        from rag.llm import chat_client
        from rag.logs import configure_logging

        configure_logging(settings.log_level, settings.log_json)
        self._error: RagError | None = None
        try:
            # rebuild=False: the driver has made sure a matching index exists; a worker that
            # finds another one (a rebuild in between) refuses rather than build its own.
            engine = load_engine(settings, rebuild=False)
        except RagError as exc:  # raised again by ready(), where the driver sees it as is
            self._error = exc
            return
        self._answerer = Answerer(engine, chat_client(settings))
        self._mode = mode or self._answerer.default_mode

    def ready(self) -> Mode:
        if self._error is not None:
            raise self._error
        return self._mode

    def answer(self, item: BatchItem) -> tuple[bool, str]:
        """``(True, output line)`` or ``(False, why this item failed)``."""
        try:
            return True, answer_line(item.id, self._answerer.answer(item.question, self._mode))
        except RagError as exc:
            return False, f"id {item.id}: {exc.message}"


def prepare_index(settings: Settings, *, progress: bool = False) -> None:
    """Build the index here when it is missing or stale, as a local ``rag ask`` would, so
    the workers only load it."""
    from rag.embedding import load_embedder
    from rag.engine import index_config
    from rag.index import open_index

    embedder = load_embedder(settings.embedder, settings.device)
    open_index(index_config(settings), embedder, rebuild=True, progress=progress)


def run_batch_on_ray(
    items: list[BatchItem],
    settings: Settings,
    mode: Mode | None,
    out: Path | None,
    *,
    workers: int,
    progress: bool = True,
) -> BatchReport:
    """Answer every item not yet in ``out`` on ``workers`` Ray actors (ray must be connected)."""
    report = BatchReport()
    todo, report.skipped = remaining(items, out)
    if not todo:
        return report
    # Absolute paths: the workers' working directory need not be ours.
    settings = settings.model_copy(
        update={
            "corpus_dir": settings.corpus_dir.resolve(),
            "index_dir": settings.index_dir.resolve(),
        }
    )
    prepare_index(settings, progress=progress)
    gpus = 1 if settings.device.startswith("cuda") else 0  # a GPU embedder: one GPU each
    workers = min(workers, len(todo))
    with WorkerPool(AnswerWorker, (settings, mode), workers, num_gpus=gpus) as pool:
        pool.start()
        results = pool.map(
            "answer", todo, progress=progress, desc="answering", unit="q", total=len(todo)
        )
        with output(out) as sink:
            for item, result in zip(todo, results, strict=True):
                if isinstance(result, Failure):
                    report.errors.append(f"id {item.id}: {result.message}")
                    continue
                ok, text = result
                if not ok:
                    report.errors.append(text)
                    continue
                sink.write(text)
                sink.flush()
                report.answered += 1
    log.info("ray batch done", extra={"answered": report.answered, "failed": len(report.errors)})
    return report
