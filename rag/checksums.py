"""SHA-256 of every file of an index build, recorded in its manifest and checked at load.

A truncated or altered file is then found by name before anything parses it, so damage is a
one-line error instead of a crash deep inside FAISS or NumPy, or quotes cut at wrong offsets.

Hashing a whole build costs seconds per 100k chunks (``embeddings.npy`` is most of it), so a
file whose content was hashed is remembered with its stat (size, mtime, ctime, inode, device)
in ``VERIFIED``, a sidecar in the build folder, and later loads hash only files whose stat
changed. Any write through the file system changes size or ctime (ctime cannot be set back
from user space), and a copy gets a new inode, so truncation, rewrites and copies are hashed
again. What a stat cannot see is bits rotting in place on the disk, or a
deliberate write followed by resetting the clock; ``load_index(..., verify=True)`` hashes every
file regardless.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

MANIFEST = "manifest.json"  # it holds the checksums, so it is the one file not listed
VERIFIED = ".verified.json"  # {relative path: [stat key..., sha256]} of files hashed whole
_NOT_LISTED = {MANIFEST, VERIFIED}
RACY_NS = 2_000_000_000


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _hash_stable(path: Path) -> tuple[str, list[int] | None]:
    """The file's sha256, and its stat key when it is safe to remember: unchanged while
    hashed, and last written over ``RACY_NS`` ago, since file times tick coarsely (a rewrite
    of the same size in the same tick would keep them; git calls these entries racy)."""
    before = _stat_key(path)
    digest = file_sha256(path)
    stable = _stat_key(path) == before and time.time_ns() - max(before[1:3]) > RACY_NS
    return digest, (before if stable else None)


def build_checksums(build: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``build`` except the manifest.

    The stats of the files hashed are remembered too, so the first load need not hash again.
    """
    sums: dict[str, str] = {}
    seen: dict[str, list[int | str]] = {}
    for path in sorted(build.rglob("*")):
        if not path.is_file() or path.name in _NOT_LISTED or path.name.startswith(VERIFIED):
            continue
        name = path.relative_to(build).as_posix()
        sums[name], key = _hash_stable(path)
        if key is not None:
            seen[name] = [*key, sums[name]]
    _write_verified(build, seen)
    return sums


def _read_verified(build: Path) -> dict[str, list[int | str]]:
    try:
        data = json.loads((build / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: everything is hashed
    return data if isinstance(data, dict) else {}


def _write_verified(build: Path, seen: dict[str, list[int | str]]) -> None:
    """Atomically, and only where the folder is writable: a read-only index just hashes."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=VERIFIED + ".", dir=build)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(seen, fh)
        os.replace(tmp, build / VERIFIED)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def checksum_problem(
    build: Path, expected: dict[str, str], only: set[str] | None = None, *, full: bool = False
) -> tuple[str, str] | None:
    """The first file (of ``only``, or of all) whose content differs from ``expected``, as
    ``(relative path, why)``; None when they all match.

    A file whose stat matches the one remembered when the same content was hashed is not
    hashed again, unless ``full``.
    """
    seen = _read_verified(build)
    changed = False
    for name, digest in expected.items():
        if only is not None and name not in only:
            continue
        path = build / name
        try:
            if not full and seen.get(name) == [*_stat_key(path), digest]:
                continue
            actual, key = _hash_stable(path)
        except FileNotFoundError:
            return name, "missing"
        except OSError as exc:
            return name, f"unreadable ({exc.strerror or exc})"
        if actual != digest:
            return name, "checksum mismatch (truncated or changed after the build)"
        if key is not None and seen.get(name) != [*key, digest]:
            seen[name], changed = [*key, digest], True
    if changed:
        _write_verified(build, seen)
    return None
