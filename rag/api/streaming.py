"""Streaming answers: one delta per sentence, and a response that stops the LLM request when
the client goes away.

Starlette runs a sync body iterator in worker threads and, when the client disconnects, just
stops asking it for more: the iterator, and the LLM connection it holds, stay open until the
garbage collector finds them. Here a watcher waits for the disconnect, shuts the LLM sockets
down through :class:`~rag.llm.Upstream` (waking a worker blocked on them) and closes the
iterator as soon as no worker is inside it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.llm import Upstream

# A sentence ends at a terminator (a period only before a space, a marker or the end, and not
# after a digit: 3.2T), then any closing quotes, then the citation markers that belong to it.
_SENTENCE_END = re.compile(
    r"(?:[。！？；!?;…]+|(?<![0-9])\.+(?=\s|\[|$))[”’」』)）》】〉］\"']*(?:\s*\[\d{1,3}\])*"
)


def sentence_pieces(text: str) -> Iterator[str]:
    """``text`` cut after each sentence and its citation markers; the pieces join to ``text``.

    An extractive answer is complete at once, but a client shows the first sentence sooner
    (and a reader follows it better) when each sentence arrives as its own delta.
    """
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start and text[start : match.end()].strip():
            yield text[start : match.end()]
            start = match.end()
    if start < len(text):
        yield text[start:]


class _Pump:
    """Pulls ``events`` one item per worker-thread call; cancellable from any thread."""

    def __init__(self, events: Generator[str], upstream: Upstream) -> None:
        self.events = events
        self.upstream = upstream
        self._lock = threading.Lock()
        self._closed = False

    def pull(self) -> str | None:
        """The next item, or None at the end or once cancelled (then the iterator is closed)."""
        with self._lock:
            if self._closed:
                return None
            with self.upstream.active():
                item = next(self.events, None)
            if self._closed or item is None:
                self._close()
                return None
            return item

    def cancel(self) -> None:
        self._closed = True
        self.upstream.cancel()
        # A worker inside pull() closes the iterator when it returns; otherwise do it now.
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self.events.close()

    async def chunks(self) -> AsyncIterator[str]:
        while True:
            # Abandon on cancel: a worker blocked on the LLM must not hold up the disconnect.
            item = await anyio.to_thread.run_sync(self.pull, abandon_on_cancel=True)
            if item is None:
                return
            yield item


class UpstreamStreamingResponse(StreamingResponse):
    """Server-sent events from ``events``; a client disconnect cancels ``upstream``."""

    def __init__(self, events: Generator[str], upstream: Upstream, **kwargs: Any) -> None:
        self._pump = _Pump(events, upstream)
        super().__init__(self._pump.chunks(), **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                self._pump.cancel()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self.stream_response(send)
            except OSError:  # the client went away while we were sending
                pass
            finally:
                self._pump.cancel()
                group.cancel_scope.cancel()
