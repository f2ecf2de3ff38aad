"""The knowledge base: article files added to and deleted from the corpus folder, and index
builds run in the background, one at a time.

Files land atomically (written to a hidden temporary file in the corpus folder, checked by the
corpus reader, then renamed into place), so a build never reads half a file and a rejected
upload leaves nothing behind. The CLI (``rag index --add/--remove``) and the HTTP API both go
through :class:`Library`; the server's builds go through :class:`Builder`, which coalesces
requests that arrive during a build into one follow-up build.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from rag import corpus as corpus_module
from rag.errors import (
    ConflictError,
    CorpusError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnsupportedFileError,
    unicode_problem,
)
from rag.settings import BUNDLED_CORPUS

log = logging.getLogger(__name__)

TEMP_PREFIX = ".upload-"  # hidden: the corpus reader never picks up a file being written
MAX_NAME_BYTES = 255  # what common file systems allow for one name


def accepted_suffixes() -> tuple[str, ...]:
    """The file types the corpus reader takes (read at call time: the list may grow)."""
    return tuple(s.lower() for s in corpus_module.ARTICLE_SUFFIXES)


def safe_name(raw: str) -> str:
    """The file name to store an upload under, or an error saying why it cannot be stored.

    Only the last path component is kept (browsers on some systems send ``C:\\...\\a.txt``,
    and ``../x.txt`` must never leave the folder); hidden names, control characters and
    types the reader does not take are refused.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if unicode_problem(name) or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInputError(f"file name {raw!r} holds characters a file name cannot")
    if name in ("", ".", ".."):
        raise InvalidInputError(f"file name {raw!r} names no file")
    if name.startswith("."):
        raise InvalidInputError(f"file name {name!r} is hidden (starts with '.'); rename it")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidInputError(f"file name {name[:40]!r}... is over {MAX_NAME_BYTES} bytes")
    suffixes = accepted_suffixes()
    if not name.lower().endswith(suffixes):
        raise UnsupportedFileError(
            f"{name!r} is not an article type this service reads ({', '.join(suffixes)})"
        )
    return name


@dataclass(frozen=True)
class Upload:
    """One file to add: the name it was sent with and its bytes."""

    name: str
    data: bytes


def read_uploads(paths: Sequence[Path]) -> list[Upload]:
    """Files from disk as uploads (for ``rag index --add``), each stored under its own name."""
    uploads = []
    for path in paths:
        try:
            uploads.append(Upload(path.name, path.read_bytes()))
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return uploads


@dataclass(frozen=True)
class Added:
    id: str
    bytes: int
    replaced: bool  # an article of that name was there before


class Library:
    """The article files of one corpus folder."""

    def __init__(self, corpus_dir: Path, max_bytes: int) -> None:
        self.corpus_dir = corpus_dir
        self.max_bytes = max_bytes
        self._lock = threading.Lock()  # one change at a time within this process

    @property
    def editable(self) -> bool:
        """The articles shipped inside the package are never changed in place."""
        try:
            return self.corpus_dir.resolve() != BUNDLED_CORPUS.resolve()
        except OSError:
            return False

    def _check_editable(self) -> None:
        if not self.editable:
            raise ConflictError(
                "the bundled articles cannot be changed: set RAG_CORPUS_DIR (or --corpus) to a "
                "folder of your own to add and delete articles"
            )

    def add(self, uploads: Sequence[Upload]) -> list[Added]:
        """Store every upload, or none of them: all are checked before any is put in place."""
        self._check_editable()
        if not uploads:
            raise InvalidInputError("no file sent: send one or more files in fields named 'file'")
        names = [safe_name(u.name) for u in uploads]
        seen: set[str] = set()
        for name, upload in zip(names, uploads, strict=True):
            if name.lower() in seen:
                raise InvalidInputError(f"{name!r} is sent twice")
            seen.add(name.lower())
            if len(upload.data) > self.max_bytes:
                raise TooLargeError(
                    f"{name!r} is {len(upload.data)} bytes; the limit is {self.max_bytes}"
                )
        if not self.corpus_dir.is_dir():
            raise CorpusError(f"corpus folder not found: {self.corpus_dir}")
        with self._lock:
            temps: list[Path] = []
            try:
                for name, upload in zip(names, uploads, strict=True):
                    temps.append(self._write_checked(name, upload.data))
                added = []
                for name, temp, upload in zip(names, temps, uploads, strict=True):
                    target = self.corpus_dir / name
                    replaced = target.exists()
                    os.replace(temp, target)
                    added.append(Added(name, len(upload.data), replaced))
                _sync_folder(self.corpus_dir)
            finally:
                for temp in temps:
                    temp.unlink(missing_ok=True)
        log.info("articles added", extra={"ids": [a.id for a in added]})
        return added

    def _write_checked(self, name: str, data: bytes) -> Path:
        """Write ``data`` to a hidden temporary file and read it as an article; a file the
        reader cannot use is refused now, with the reader's reason."""
        temp = self.corpus_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
        try:
            with temp.open("xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            corpus_module.load_document(temp)
        except CorpusError as exc:
            temp.unlink(missing_ok=True)
            reason = exc.message.removeprefix(f"{temp}: ")
            raise InvalidInputError(f"{name!r} cannot be used as an article: {reason}") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def path_of(self, doc_id: str) -> Path:
        """The file behind a document id (its path relative to the corpus folder)."""
        parts = PurePosixPath(doc_id).parts
        if (
            not parts
            or unicode_problem(doc_id)
            or any(p in ("..", ".", "/") or p.startswith(".") for p in parts)
        ):
            raise NotFoundError(f"no document {doc_id!r}")
        path = self.corpus_dir.joinpath(*parts)
        if not path.name.lower().endswith(accepted_suffixes()) or not (
            path.is_file() or path.is_symlink()
        ):
            raise NotFoundError(f"no document {doc_id!r}")
        return path

    def delete(self, doc_id: str, indexed: Sequence[str] = ()) -> Path:
        """Remove one article file; ``indexed`` (the ids being served) guards the last one."""
        self._check_editable()
        with self._lock:
            path = self.path_of(doc_id)
            if list(indexed) == [doc_id]:
                raise ConflictError(
                    f"{doc_id!r} is the only article: add another before deleting it"
                )
            path.unlink()
            _sync_folder(path.parent)
        log.info("article deleted", extra={"id": doc_id})
        return path


def _sync_folder(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable (best effort where folders cannot sync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- background builds -------------------------------------------------------------------------

BuildState = Literal["idle", "building"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildStatus:
    """What :class:`Builder` is doing: ``done``/``total`` count texts embedded in this build."""

    state: BuildState
    done: int
    total: int
    pending: bool  # another build will follow this one
    builds: int  # finished since the server started
    error: str | None  # why the last build failed (None after a success)
    started_at: float | None


class Builder:
    """Runs ``build`` in a background thread, one at a time.

    A request during a build sets a flag; when the build ends one more build runs, however
    many requests came in meanwhile, so every change is in the index that follows it.
    ``on_built`` (the service's hot swap) runs before the state returns to idle, so "idle"
    means the server answers from the newest build.
    """

    def __init__(self, build: Callable[[Progress], object], on_built: Callable[[], object]) -> None:
        self._build = build
        self._on_built = on_built
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._pending = False
        self._state: BuildState = "idle"
        self._done = self._total = self._builds = 0
        self._error: str | None = None
        self._started: float | None = None

    def request(self) -> None:
        """Ask for a build; returns at once."""
        with self._cond:
            self._pending = True
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="index-build", daemon=True)
                self._worker.start()

    def status(self) -> BuildStatus:
        with self._cond:
            return BuildStatus(
                self._state,
                self._done,
                self._total,
                self._pending,
                self._builds,
                self._error,
                self._started,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build runs or is pending; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._worker is None, timeout)

    def _progress(self, done: int, total: int) -> None:
        with self._cond:
            self._done, self._total = done, total

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._state, self._worker, self._started = "idle", None, None
                    self._cond.notify_all()
                    return
                self._pending = False
                self._state, self._done, self._total = "building", 0, 0
                self._started = time.time()
            error = None
            try:
                self._build(self._progress)
                self._on_built()
            except Exception as exc:  # the old index keeps serving; the status says why
                error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                log.warning("background build failed", extra={"error": error})
            with self._cond:
                self._error = error
                self._builds += 1
