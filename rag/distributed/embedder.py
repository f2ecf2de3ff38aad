"""An :class:`~rag.embedding.Embedder` whose passages are embedded by a pool of Ray workers.

``build_index`` is unchanged: it hands this embedder every text still to embed in large calls
(``call_batch``), and each call is cut into the same 32-text batches a local build embeds, spread
over the workers and stitched back in order, so the index written is the one a local build
writes and unchanged chunks are reused from the previous build as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.distributed.pool import Failure, WorkerPool
from rag.embedding import Embedder, load_embedder
from rag.errors import EmbedderError, RagError
from rag.index import EMBED_BATCH


class EmbedWorker:
    """One Ray actor: loads the embedder once, then embeds batch after batch."""

    def __init__(self, spec: str, device: str) -> None:
        self._error: RagError | None = None
        try:
            self._embedder: Embedder = load_embedder(spec, device)
        except RagError as exc:  # raised again by ready(), where the driver sees it as is
            self._error = exc

    def ready(self) -> tuple[str, int]:
        if self._error is not None:
            raise self._error
        return self._embedder.id, self._embedder.dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed_passages(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed_queries(texts)


class RayEmbedder:
    """Passages and queries embedded across ``workers`` Ray actors (ray must be connected).

    Use as a context manager, or call :meth:`close`, to give the workers' CPUs back.
    """

    def __init__(
        self, spec: str, workers: int, *, device: str = "cpu", batch: int = EMBED_BATCH
    ) -> None:
        gpus = 1 if device.startswith("cuda") else 0
        self._pool = WorkerPool(EmbedWorker, (spec, device), workers, num_gpus=gpus)
        self._batch = batch
        ids = set(self._pool.start())
        if len(ids) != 1:  # workers with different package versions would mix vectors
            raise EmbedderError(f"the Ray workers load different embedders: {sorted(ids)}")
        [(self.id, self.dim)] = ids
        self.workers = workers
        # How many texts build_index should pass per call: enough to keep every worker busy.
        self.call_batch = batch * 32 * workers

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._spread("embed_passages", texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._spread("embed_queries", texts)

    def _spread(self, method: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [list(texts[i : i + self._batch]) for i in range(0, len(texts), self._batch)]
        parts: list[Any] = list(self._pool.map(method, batches))
        for part in parts:
            if isinstance(part, Failure):  # an index is all or nothing: no partial build
                raise EmbedderError(f"embedding on the Ray cluster failed: {part.message}")
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> RayEmbedder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
