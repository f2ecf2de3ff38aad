"""SHA-256 of every file of an index build, recorded in its manifest and checked at load.

A truncated or altered file is then found by name before anything parses it, so damage is a
one-line error instead of a crash deep inside FAISS or NumPy, or quotes cut at wrong offsets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST = "manifest.json"  # it holds the checksums, so it is the one file not listed


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def build_checksums(build: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``build`` except the manifest."""
    return {
        path.relative_to(build).as_posix(): file_sha256(path)
        for path in sorted(build.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def checksum_problem(
    build: Path, expected: dict[str, str], only: set[str] | None = None
) -> tuple[str, str] | None:
    """The first file (of ``only``, or of all) whose content differs from ``expected``, as
    ``(relative path, why)``; None when they all match."""
    for name, digest in expected.items():
        if only is not None and name not in only:
            continue
        try:
            actual = file_sha256(build / name)
        except FileNotFoundError:
            return name, "missing"
        except OSError as exc:
            return name, f"unreadable ({exc.strerror or exc})"
        if actual != digest:
            return name, "checksum mismatch (truncated or changed after the build)"
    return None
