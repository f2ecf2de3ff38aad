"""One build at a time per index folder: an exclusive file lock, and a writability check.

Two builds racing on one folder could otherwise publish a build that the other one then
deletes as stale. The lock lives in the index folder itself, so it works across processes
and across threads of one process (a server's background rebuild next to ``rag index``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag.errors import IndexBusyError, IndexWriteError

log = logging.getLogger(__name__)

LOCK_FILE = ".build.lock"


def check_writable(index_dir: Path) -> None:
    """Fail now, with one line, if ``index_dir`` cannot hold a new build: before any
    embedding, not after hours of it."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=index_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise IndexWriteError(
            f"cannot write the index folder {index_dir} ({exc.strerror or exc}); "
            "make it writable or set RAG_INDEX_DIR to a writable folder"
        ) from None


@contextmanager
def index_lock(index_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the build lock of ``index_dir``; waits up to ``timeout`` seconds, saying so.

    Re-entrant within one thread (one lock object per folder), so a caller that locked to
    check-then-build can call ``build_index``, which locks again.
    """
    check_writable(index_dir)
    lock = FileLock((index_dir / LOCK_FILE).resolve(), is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning(
            "another build of this index is running; waiting for it to finish",
            extra={"index_dir": str(index_dir), "timeout_seconds": timeout},
        )
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise IndexBusyError(
                f"another build of {index_dir} was still running after {timeout:g}s; "
                "try again when it is done (RAG_INDEX_LOCK_TIMEOUT sets the wait)"
            ) from None
    try:
        yield
    finally:
        lock.release()
