"""Who may start expensive work, and when: a per-client rate limit and slots for answering.

The rate limit (``RAG_RATE_LIMIT``, off by default) uses the ``limits`` library's moving
window in memory, per process. The slots bound how many questions are worked on at once (the
cores, by default) so a burst queues instead of slowing every answer; questions longer than
``RAG_LONG_QUESTION_CHARS`` must also take one of a smaller set of slots (half), so however
many long questions arrive, short ones always find a free core.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

# Requests that embed, retrieve and answer: the ones worth queueing.
EXPENSIVE = {
    ("POST", "/api/ask"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/ask"),
}
# Requests whose one costly step is the query embedding, which rag.embedding.QueryBatcher
# already bounds (passes at once) and batches (queued queries share a pass). Holding them to
# the answer slots too kept at most `cores` queries in the batcher, so at c=16 every pass
# embedded one query (bench/README.md, "Throughput"). Long ones still take a long slot.
BATCHED = {("POST", "/api/search")}


class RateLimit:
    """``limit`` (e.g. ``"60/minute"``) per client key; :meth:`retry_after` is None if allowed."""

    def __init__(self, limit: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Count one request for ``client``; seconds to wait when over the limit, else None."""
        for item in self.items:
            if not self.limiter.hit(item, client):
                reset, _ = self.limiter.get_window_stats(item, client)
                return max(1, math.ceil(reset - time.time()))
        return None

    @staticmethod
    def client_key(host: str, token: bytes | None) -> str:
        """A checked API key names the client (many may share an address); else its address."""
        if token:
            return "key:" + hashlib.sha256(token).hexdigest()[:16]
        return "ip:" + host


class Slots:
    """At most ``slots`` questions at once; long ones also need one of ``slots // 2``."""

    def __init__(self, slots: int, long_chars: int) -> None:
        self.size = slots or usable_cores()
        self.long_size = max(1, self.size // 2)
        self.long_chars = long_chars
        self._all = asyncio.Semaphore(self.size)
        self._long = asyncio.Semaphore(self.long_size)

    def needed(self, route: tuple[str, str], body: bytes, content_type: bytes) -> bool:
        """Whether a request to ``route`` (method, path) must take a slot."""
        if route in EXPENSIVE:
            return True
        return route in BATCHED and self.is_long(body, content_type)

    @asynccontextmanager
    async def slot(self, body: bytes, content_type: bytes) -> AsyncIterator[None]:
        if self.is_long(body, content_type):
            async with self._long, self._all:
                yield
        else:
            async with self._all:
                yield

    def is_long(self, body: bytes, content_type: bytes) -> bool:
        """Whether the text in ``body`` (JSON or a form) is longer than a short question."""
        if len(body) <= self.long_chars:
            return False  # every character takes at least a byte
        return text_chars(body, content_type) > self.long_chars


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def text_chars(body: bytes, content_type: bytes) -> int:
    """Characters of text a request carries: all JSON strings, or all form values."""
    try:
        if content_type.startswith(b"application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"))
            return sum(len(v) for values in form.values() for v in values)
        return _strings_length(json.loads(body))
    except (ValueError, RecursionError):
        return 0  # unreadable: the route refuses it at once, no work to queue


def _strings_length(value: Any) -> int:
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total
